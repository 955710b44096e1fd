"""String graders: exact, normalized exact, contains, regex.

Normalization (case, whitespace, punctuation, and a leading "answer:" label) follows the
SQuAD-style normalizer most QA evals use, so a model writing "Paris." for "paris" is right.
"""

from __future__ import annotations

import re
import string

from tinker_chief.evals.graders.base import RuleGrader, Verdict, grader

_PUNCT = str.maketrans("", "", string.punctuation)
_ANSWER_LABEL = re.compile(r"^\s*(final\s+)?answer\s*[:\-]\s*", re.IGNORECASE)


def normalize_text(text: str) -> str:
    """Lowercase, drop an "Answer:" label, punctuation, articles and extra whitespace."""
    text = _ANSWER_LABEL.sub("", text.strip()).lower().translate(_PUNCT)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


@grader("exact")
class ExactGrader(RuleGrader):
    """Response equals target after stripping surrounding whitespace."""

    def check(self, response: str, target: str) -> Verdict:
        answer = response.strip()
        return Verdict(answer == target.strip(), answer)


@grader("normalized_exact")
class NormalizedExactGrader(RuleGrader):
    """Equal after `normalize_text` on both sides."""

    def check(self, response: str, target: str) -> Verdict:
        answer = normalize_text(response)
        return Verdict(answer == normalize_text(target), answer)


@grader("contains")
class ContainsGrader(RuleGrader):
    """The normalized target occurs in the normalized response (on word boundaries)."""

    def check(self, response: str, target: str) -> Verdict:
        needle = normalize_text(target)
        haystack = f" {normalize_text(response)} "
        return Verdict(bool(needle) and f" {needle} " in haystack, needle if needle else None)


@grader("regex")
class RegexGrader(RuleGrader):
    """The target is a regular expression searched in the response.

    With `pattern=...` the pattern is fixed and its first group (or whole match) must equal
    the target instead.
    """

    def __init__(self, pattern: str | None = None, ignore_case: str = "true") -> None:
        self.flags = re.IGNORECASE if ignore_case.lower() in ("1", "true", "yes") else 0
        self.pattern = re.compile(pattern, self.flags) if pattern else None

    def check(self, response: str, target: str) -> Verdict:
        if self.pattern is None:
            try:
                match = re.search(target, response, self.flags)
            except re.error as exc:
                return Verdict(None, None, f"target is not a valid regex: {exc}")
            return Verdict(match is not None, match.group(0) if match else None)
        match = self.pattern.search(response)
        if match is None:
            return Verdict(False, None, "pattern not found")
        answer = match.group(1) if match.groups() else match.group(0)
        return Verdict(answer.strip() == target.strip(), answer)
