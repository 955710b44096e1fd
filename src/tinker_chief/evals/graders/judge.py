"""LLM-as-judge grader: a rubric prompt, any model through the tinker SDK, `GRADE: C/I` verdicts.

Options: `llm_judge:max_tokens=N` bounds the judge's reply, `rubric=...` replaces the rubric.
The template follows Inspect's `model_graded_qa` (question, submission, criterion, and
instructions ending in `GRADE: C` or `GRADE: I`), and like Inspect the *last* `GRADE:` in the
reply binds. A reply with no parseable grade is an unscored sample (`Verdict.correct is None`,
reason in `explanation`) that the summary counts, so a weak judge cannot hide as low accuracy.
"""

from __future__ import annotations

import re

from tinker_chief.evals.graders.base import GradeInput, Grader, TextGenerator, Verdict, grader

DEFAULT_RUBRIC = (
    "Decide whether the submission answers the question correctly according to the criterion. "
    "Ignore differences in style or wording that do not change the meaning."
)

JUDGE_TEMPLATE = """You are assessing a submitted answer on a given task based on a criterion.

[BEGIN DATA]
***
[Task]: {question}
***
[Submission]: {answer}
***
[Criterion]: {criterion}
***
[END DATA]

{rubric}

After assessing the submitted answer, reply with 'GRADE: $LETTER' (without quotes) where LETTER is
one of CI. Please choose ONE option for the grade: either "C" for correct answers, or "I" for
incorrect answers. First write out your reasoning in one or two sentences, then end with your
answer formatted as 'GRADE: $LETTER'."""

_GRADE = re.compile(r"GRADE\s*:\s*\**\s*([A-Z])\b")


def parse_grade(reply: str) -> bool | None:
    """True for C, False for I, None when no (or an off-menu) grade is present."""
    grades = _GRADE.findall(reply)
    if not grades:
        return None
    return {"C": True, "I": False}.get(grades[-1])


@grader("llm_judge")
class LLMJudgeGrader(Grader):
    """Asks a judge model whether the response meets the target criterion."""

    needs_judge = True

    def __init__(
        self, judge: TextGenerator, rubric: str = DEFAULT_RUBRIC, max_tokens: str = "256"
    ) -> None:
        self.judge = judge
        self.rubric = rubric
        self.max_tokens = int(max_tokens)
        if self.max_tokens < 1:
            raise ValueError("max_tokens must be >= 1")

    async def grade(self, item: GradeInput) -> Verdict:
        prompt = JUDGE_TEMPLATE.format(
            question=item.question, answer=item.response, criterion=item.target, rubric=self.rubric
        )
        reply = await self.judge.generate_text(
            [{"role": "user", "content": prompt}], self.max_tokens
        )
        verdict = parse_grade(reply)
        if verdict is None:
            return Verdict(None, None, f"unparseable judge verdict: {reply[-200:]!r}")
        return Verdict(verdict, "C" if verdict else "I", reply[-500:])
