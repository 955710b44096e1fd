"""The calibration suite: multiple-choice questions scored by option logprobs through the SDK.

`questions.jsonl` (written by us: 30 easy general-knowledge questions, 4 options each) is
rendered as a chat question listing lettered options; the model's probability of each option
is the softmax of the logprobs of the option letters as the assistant's reply
(`compute_logprobs`), so no generation or parsing is involved. Metrics in `metrics.py`.
Each record keeps the option probabilities, so metrics, intervals and the per-question Brier
outcomes can be recomputed from a resumed run's cached records.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from tinker_chief.errors import ChiefError
from tinker_chief.evals.calibration.metrics import (
    ScoredQuestion,
    calibration_intervals,
    calibration_metrics,
    reliability_bins,
    scalar_metrics,
)
from tinker_chief.evals.model_sampler import ModelSampler
from tinker_chief.evals.records import SampleRecord
from tinker_chief.jsonl import read_jsonl_objects, require_str

LETTERS = "ABCDEFGHIJ"


@dataclass(frozen=True)
class MCQuestion:
    id: str
    question: str
    choices: list[str]
    answer_index: int

    def messages(self) -> list[dict[str, str]]:
        options = "\n".join(f"{LETTERS[i]}. {c}" for i, c in enumerate(self.choices))
        return [
            {"role": "user", "content": f"{self.question}\n{options}\nAnswer with the letter only."}
        ]


def load_questions(path: str | Path | None = None) -> list[MCQuestion]:
    """Our shipped set, or a JSONL of {"id","question","choices":[...],"answer":"B"}."""
    if path is None:
        with resources.as_file(resources.files(__package__) / "questions.jsonl") as real:
            return load_questions(real)
    questions = []
    for line in read_jsonl_objects(path):
        choices = line.value.get("choices")
        if (
            not isinstance(choices, list)
            or not 2 <= len(choices) <= len(LETTERS)
            or not all(isinstance(c, str) for c in choices)
        ):
            raise line.error("choices", f"a list of 2-{len(LETTERS)} strings", choices)
        answer = require_str(line, "answer").strip().upper()
        if len(answer) != 1 or LETTERS.find(answer) not in range(len(choices)):
            raise line.error("answer", f"one letter among {LETTERS[: len(choices)]}", answer)
        questions.append(
            MCQuestion(
                str(line.value.get("id", line.line_number)),
                require_str(line, "question"),
                choices,
                LETTERS.index(answer),
            )
        )
    return questions


async def score_question(sampler: ModelSampler, question: MCQuestion) -> SampleRecord:
    record = SampleRecord(question.id, question.messages(), LETTERS[question.answer_index])
    try:
        probs = await sampler.option_probabilities(
            question.messages(), list(LETTERS[: len(question.choices)])
        )
    except ChiefError as exc:
        record.error = str(exc)
        return record
    scored = ScoredQuestion(question.id, probs, question.answer_index)
    record.correct, record.answer = scored.correct, LETTERS[scored.predicted]
    record.extra = {"probabilities": probs, "confidence": scored.confidence, "brier": scored.brier}
    return record


def scored_from_records(records: list[SampleRecord]) -> list[ScoredQuestion]:
    scored = []
    for record in records:
        probabilities = record.extra.get("probabilities")
        if record.error is None and isinstance(probabilities, list):
            scored.append(ScoredQuestion(record.id, probabilities, LETTERS.index(record.target)))
    return scored


async def run_calibration(
    sampler: ModelSampler,
    questions: list[MCQuestion] | None = None,
    on_record: Callable[[SampleRecord], None] | None = None,
) -> list[SampleRecord]:
    async def one(question: MCQuestion) -> SampleRecord:
        record = await score_question(sampler, question)
        if on_record:
            on_record(record)
        return record

    return list(await asyncio.gather(*(one(q) for q in (questions or load_questions()))))


__all__ = [
    "MCQuestion",
    "ScoredQuestion",
    "calibration_intervals",
    "calibration_metrics",
    "load_questions",
    "reliability_bins",
    "run_calibration",
    "scalar_metrics",
    "scored_from_records",
]
