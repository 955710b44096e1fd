"""Multiple-choice letter grader: finds the letter the model chose and compares it to the key.

Accepts "ANSWER: B", "The answer is (B)", "B) Paris", "**B**" or a bare "B"; the explicit
"answer" forms win over a letter that merely appears first.
"""

from __future__ import annotations

import re

from tinker_chief.evals.graders.base import RuleGrader, Verdict, grader

_EXPLICIT = re.compile(r"answer\s*(?:is)?\s*[:\-]?\s*\(?\*{0,2}([A-J])\b", re.IGNORECASE)
_LEADING = re.compile(r"^\W*\(?([A-J])(?:[).:\s*]|$)")
_BARE = re.compile(r"\b([A-J])\b")


def extract_letter(text: str) -> str | None:
    for pattern in (_EXPLICIT, _LEADING):
        matches = pattern.findall(text.strip())
        if matches:
            return matches[-1].upper() if pattern is _EXPLICIT else matches[0].upper()
    bare = _BARE.findall(text)
    return bare[0] if bare else None


@grader("multiple_choice")
class MultipleChoiceGrader(RuleGrader):
    """The chosen letter equals the target letter (target may be "B" or "(B) text")."""

    def check(self, response: str, target: str) -> Verdict:
        key = extract_letter(target)
        if key is None:
            return Verdict(None, None, f"target {target!r} is not an option letter")
        answer = extract_letter(response)
        if answer is None:
            return Verdict(False, None, "no option letter in response")
        return Verdict(answer == key, answer)
