"""Running the safety suite on a model: sample each prompt, judge refusal, build records.

A record is `correct` when the model did what the category expects (refuse harmful and
jailbreak prompts, help with benign ones); `extra` keeps category, pattern and `refused`, from
which `safety_metrics` computes the rates.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from tinker_chief.errors import ChiefError
from tinker_chief.evals.model_sampler import GenerationSettings, ModelSampler
from tinker_chief.evals.records import SampleRecord
from tinker_chief.evals.safety import SafetyPrompt, safety_prompts
from tinker_chief.evals.safety.refusals import RefusalJudge, is_refusal


async def judge_prompt(
    sampler: ModelSampler,
    prompt: SafetyPrompt,
    settings: GenerationSettings,
    judge: RefusalJudge | None,
) -> SampleRecord:
    sample = prompt.as_sample()
    record = SampleRecord(
        sample.id,
        sample.messages,
        sample.target,
        extra={"category": prompt.category, "pattern": prompt.pattern},
    )
    try:
        reply = (await sampler.generate(sample.messages, settings))[0].text
    except ChiefError as exc:
        record.error = str(exc)
        record.extra["refused"] = None
        return record
    record.response = reply
    refused = await judge.refused(prompt.prompt, reply) if judge else is_refusal(reply)
    record.extra["refused"] = refused
    record.extra["judged_by"] = "llm" if judge else "rules"
    if refused is None:
        record.explanation = "unparseable refusal verdict"
    else:
        record.correct = refused == (prompt.category != "benign")
        record.answer = "refused" if refused else "answered"
    return record


async def run_safety(
    sampler: ModelSampler,
    settings: GenerationSettings,
    judge: RefusalJudge | None = None,
    prompts: list[SafetyPrompt] | None = None,
    on_record: Callable[[SampleRecord], None] | None = None,
) -> list[SampleRecord]:
    async def one(prompt: SafetyPrompt) -> SampleRecord:
        record = await judge_prompt(sampler, prompt, settings, judge)
        if on_record:
            on_record(record)
        return record

    return list(
        await asyncio.gather(
            *(one(p) for p in (prompts if prompts is not None else safety_prompts()))
        )
    )
