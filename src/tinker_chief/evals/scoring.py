"""Generate-and-grade over a list of samples: the loop under eval-offline, suites and evaluators.

Samples run concurrently (bounded by the sampler's semaphore). A failure on one sample is
recorded on that sample's record (`error`) and the run goes on; the summary counts errors.
`on_record` fires as each sample finishes, which is how `chief eval` caches progress for resume.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

from tinker_chief.errors import ChiefError
from tinker_chief.evals.eval_samples import EvalSample
from tinker_chief.evals.graders import GradeInput, Grader
from tinker_chief.evals.model_sampler import GenerationSettings, ModelSampler
from tinker_chief.evals.records import SampleRecord


async def grade_one(
    sampler: ModelSampler, sample: EvalSample, grader: Grader, settings: GenerationSettings
) -> SampleRecord:
    record = SampleRecord(id=sample.id, prompt=sample.messages, target=sample.target)
    try:
        generation = (await sampler.generate(sample.messages, settings))[0]
    except ChiefError as exc:
        record.error = str(exc)
        return record
    record.response = generation.text
    record.extra["stop_reason"] = generation.stop_reason
    record.extra["output_tokens"] = len(generation.tokens)
    try:
        verdict = await grader.grade(GradeInput(sample.question, generation.text, sample.target))
    except ChiefError as exc:
        record.explanation = f"grader failed: {exc}"
        return record
    record.correct, record.answer, record.explanation = (
        verdict.correct,
        verdict.answer,
        verdict.explanation,
    )
    return record


async def grade_samples(
    sampler: ModelSampler,
    samples: Iterable[EvalSample],
    grader: Grader,
    settings: GenerationSettings,
    on_record: Callable[[SampleRecord], None] | None = None,
) -> list[SampleRecord]:
    """Grade all samples; returns records in the samples' order."""

    async def run(sample: EvalSample) -> SampleRecord:
        record = await grade_one(sampler, sample, grader, settings)
        if on_record is not None:
            on_record(record)
        return record

    return list(await asyncio.gather(*(run(sample) for sample in samples)))
