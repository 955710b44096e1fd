"""The RL reward: which grader fits the answers in the data, and what the plan says about it.

RL learns only from differences between a group's rewards, so a grader that never says "correct"
throws the whole signal away. A small chat model asked "What is 3 + 4?" answers "The answer is
7.", which `normalized_exact` scores 0 against "7" and `numeric` (the last number, or the
`\\boxed{}` one) scores 1. The grader is therefore chosen from what the answers look like:

- every answer a number -> `numeric`;
- every answer an option letter (`B`, `(B)`, `B) text`) -> `multiple_choice`;
- short answers (a few words) -> `normalized_exact` (case, punctuation and articles ignored);
- longer free text -> `llm_judge` (a rule grader would almost never match a whole sentence).

A mixed column goes by the kind that covers at least `MAJORITY` of the answers, else the most
permissive rule grader that still means something (`normalized_exact`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pydantic import BaseModel

from tinker_chief.planning.hyperparams import Recommendation

MAJORITY = 0.9
SHORT_WORDS = 5  # an answer of at most this many words is a short string

_NUMBER = re.compile(r"^\s*\$?-?(\d[\d,]*(\.\d+)?|\.\d+)(\s*/\s*\d+)?\s*%?\s*$")
_LETTER = re.compile(r"^\s*\(?[A-J]\)?([.:)]\s.*|[.:)]?)\s*$")

GRADER_OF_KIND = {
    "number": "numeric",
    "letter": "multiple_choice",
    "short": "normalized_exact",
    "free": "llm_judge",
}
ALTERNATIVE_OF_KIND = {
    "number": "normalized_exact (exact text; only if answers must be written exactly as in the "
    "data)",
    "letter": "normalized_exact (if responses should be the bare letter)",
    "short": "contains (the answer anywhere in the response; looser, rewards padded answers)",
    "free": "contains or regex (cheaper than a judge when a key phrase decides correctness)",
}
WHY_OF_KIND = {
    "number": "answers are numbers: the last number of a response (or its \\boxed{} answer) is "
    "compared, so 'The answer is 7.' earns the reward",
    "letter": "answers are option letters: the chosen letter is found in 'The answer is (B)' or a "
    "bare 'B'",
    "short": f"answers are short strings (at most {SHORT_WORDS} words): compared after "
    "normalizing case, punctuation and articles",
    "free": "answers are free text: no rule can match a sentence, an LLM judge decides",
}


def kind_of_answer(answer: str) -> str:
    if _NUMBER.match(answer):
        return "number"
    if _LETTER.match(answer):
        return "letter"
    return "short" if len(answer.split()) <= SHORT_WORDS else "free"


class RewardSummary(BaseModel):
    """The plan's reward section (RL projects only)."""

    recommended: Recommendation[str]
    configured: str
    alternative: str
    answer_kinds: dict[str, int]


def recommend_grader(answers: Sequence[str]) -> tuple[Recommendation[str], str, dict[str, int]]:
    """The grader for these answers, the alternative worth knowing, and the count of each kind."""
    counts: dict[str, int] = {}
    for answer in answers:
        kind = kind_of_answer(answer)
        counts[kind] = counts.get(kind, 0) + 1
    total = max(1, len(answers))
    top = max(counts, key=lambda k: counts[k]) if counts else "short"
    kind = top if counts.get(top, 0) / total >= MAJORITY else "short"
    share = ", ".join(f"{n} {k}" for k, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    rule = WHY_OF_KIND[kind] + (
        "" if kind == top else f"; no kind covers {MAJORITY:.0%} of the answers ({share})"
    )
    return (
        Recommendation(
            value=GRADER_OF_KIND[kind], rule=rule, source=f"{len(answers)} answers: {share}"
        ),
        ALTERNATIVE_OF_KIND[kind],
        counts,
    )


def reward_summary(answers: Sequence[str], configured: str) -> tuple[RewardSummary, list[str]]:
    """The reward section of the plan and a warning when the configured grader is not the fit."""
    recommended, alternative, counts = recommend_grader(answers)
    warnings = []
    configured_name = configured.split(":", 1)[0]
    if configured_name != recommended.value:
        warnings.append(
            f"[rl] grader is {configured!r} but the answers suggest {recommended.value!r} "
            f"({recommended.rule}); a grader that rarely says correct leaves RL without signal"
        )
    summary = RewardSummary(
        recommended=recommended, configured=configured, alternative=alternative, answer_kinds=counts
    )
    return summary, warnings
