"""How each kind of suite task runs: nll, jsonl, inspect, safety, calibration.

Sample-level kinds (jsonl, safety, calibration) skip samples already in the task's cache and
append each new one as it finishes, so `chief eval` resumes mid-task. `nll` is one cheap pass
and `inspect` delegates to Inspect (whose own log is the record), so both rerun whole.
Settings that change scores are applied, not just recorded: `shots` takes the first N lines
of a jsonl file as worked examples (and does not score them); `chain_of_thought` asks for
reasoning before a final answer line.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from tinker_chief.connection import Connection
from tinker_chief.errors import ConfigurationError, EvalError
from tinker_chief.evals.cache import TaskCache
from tinker_chief.evals.eval_samples import EvalSample, load_samples
from tinker_chief.evals.graders import grader_needs_judge, make_grader
from tinker_chief.evals.model_sampler import GenerationSettings, ModelSampler
from tinker_chief.evals.records import Metric, SampleRecord, outcomes_by_id, summarize
from tinker_chief.evals.scoring import grade_samples
from tinker_chief.evals.suite import EvalTask
from tinker_chief.evals.usage import TokenUsage
from tinker_chief.paths import ProjectPaths

if TYPE_CHECKING:
    from tinker_chief.evals.intervals import Interval
    from tinker_chief.models import RendererChoice

COT_INSTRUCTION = (
    "Think step by step, then give the final answer on the last line as 'Answer: <answer>'."
)


class ProgressSink(Protocol):
    """What the runner reports progress to (the CLI draws rich progress bars)."""

    def start(self, task: str, total: int, done: int) -> None: ...

    def advance(self, task: str, n: int = 1) -> None: ...

    def finish(self, task: str, outcome: TaskOutcome) -> None: ...


@dataclass
class TaskContext:
    model: str
    connection: Connection
    project_dir: Path
    concurrency: int
    progress: ProgressSink
    usage: TokenUsage = field(default_factory=TokenUsage)  # every sampler of one task counts here
    renderer: RendererChoice | None = None  # the project's renderer for its base model


@dataclass
class TaskOutcome:
    task: str
    kind: str
    metrics: dict[str, Metric] = field(default_factory=dict)
    samples: dict[str, float] = field(default_factory=dict)
    settings: dict[str, object] = field(default_factory=dict)
    base_model: str | None = None
    log_location: str | None = None
    binary: bool = True
    reused_samples: int = 0
    ran_samples: int = 0
    error: str | None = None
    run_id: int | None = None
    reused_task: bool = False
    # prefill/tokens, sample/tokens this task used
    tokens: dict[str, int] = field(default_factory=dict)
    seconds: float | None = None  # wall time of the invocation that ran it

    def as_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> TaskOutcome:
        """An outcome from its JSON (`cache.py`'s done file; unchecked, as chief wrote it)."""
        return cls(**{k: v for k, v in value.items() if k in cls.__dataclass_fields__})


def metric(
    value: float, ci_low: float | None = None, ci_high: float | None = None, n: int | None = None
) -> Metric:
    return {"value": value, "ci_low": ci_low, "ci_high": ci_high, "n": n}


def generation_settings(task: EvalTask) -> GenerationSettings:
    s = task.settings
    return GenerationSettings(max_tokens=s.max_tokens, temperature=s.temperature, seed=s.seed)


def _data_path(task: EvalTask, context: TaskContext) -> Path:
    path = Path(task.data or "")
    return path if path.is_absolute() else context.project_dir / path


async def _open(context: TaskContext, model: str | None = None) -> ModelSampler:
    return await ModelSampler.create(
        context.connection.service_client(),
        model or context.model,
        context.concurrency,
        context.usage,
        context.renderer,
    )


def _with_prompting(samples: list[EvalSample], task: EvalTask) -> list[EvalSample]:
    shots, cot = task.settings.shots, task.settings.chain_of_thought
    if shots >= len(samples):
        raise ConfigurationError(f"task `{task.name}`: shots={shots} leaves no samples to score")
    examples = [
        m
        for s in samples[:shots]
        for m in (*s.messages[-1:], {"role": "assistant", "content": s.target})
    ]
    out = []
    for sample in samples[shots:]:
        messages = [*examples, *sample.messages]
        if cot:
            messages = [{"role": "system", "content": COT_INSTRUCTION}, *messages]
        out.append(EvalSample(sample.id, messages, sample.target, sample.metadata))
    return out


Item = TypeVar("Item")
RecordSink = Callable[[SampleRecord], None]


async def _graded(
    task: EvalTask,
    context: TaskContext,
    cache: TaskCache,
    pending: list[Item],
    runner: Callable[[ModelSampler, list[Item], RecordSink], Awaitable[list[SampleRecord]]],
    done: dict[str, SampleRecord],
) -> tuple[list[SampleRecord], str]:
    """Run `runner(sampler, pending, on_record)` with progress and caching; all records in order."""
    context.progress.start(task.name, len(pending) + len(done), len(done))
    sampler = await _open(context)

    def on_record(record: SampleRecord) -> None:
        cache.append(record)
        context.progress.advance(task.name)

    fresh = await runner(sampler, pending, on_record) if pending else []
    return [*done.values(), *fresh], sampler.base_model


def _accuracy_metrics(records: list[SampleRecord]) -> dict[str, Metric]:
    s = summarize(records)
    return {
        "accuracy": metric(s["accuracy"], s["ci_low"], s["ci_high"], s["n"]),
        "unscored": metric(s["unscored"]),
        "errors": metric(s["errors"]),
    }


async def _run_jsonl(task: EvalTask, context: TaskContext, cache: TaskCache) -> TaskOutcome:
    samples = _with_prompting(load_samples(_data_path(task, context)), task)[: task.settings.limit]
    # Like Inspect's model_graded_qa without a grader role: no judge named, the model judges itself.
    judge = (
        await _open(context, task.judge_model or context.model)
        if grader_needs_judge(task.grader)
        else None
    )
    grader = make_grader(task.grader, judge=judge)
    settings = generation_settings(task)
    done = {k: v for k, v in cache.finished_records().items() if k in {s.id for s in samples}}
    pending = [s for s in samples if s.id not in done]

    async def runner(
        sampler: ModelSampler, items: list[EvalSample], on_record: RecordSink
    ) -> list[SampleRecord]:
        return await grade_samples(sampler, items, grader, settings, on_record)

    records, base = await _graded(task, context, cache, pending, runner, done)
    return _outcome(
        task,
        records,
        base,
        _accuracy_metrics(records),
        len(done),
        {
            "grader": task.grader,
            "judge_model": task.judge_model or context.model,
            "generation": asdict(settings),
        },
    )


async def _run_safety(task: EvalTask, context: TaskContext, cache: TaskCache) -> TaskOutcome:
    from tinker_chief.evals.safety import (
        RefusalJudge,
        SafetyPrompt,
        limit_per_category,
        safety_metrics,
        safety_prompts,
        unscored_replies,
    )
    from tinker_chief.evals.safety.run import run_safety

    prompts = limit_per_category(safety_prompts(), task.settings.limit)
    judge = RefusalJudge(await _open(context, task.judge_model)) if task.judge_model else None
    settings = generation_settings(task)
    done = {k: v for k, v in cache.finished_records().items() if k in {p.id for p in prompts}}

    async def runner(
        sampler: ModelSampler, items: list[SafetyPrompt], on_record: RecordSink
    ) -> list[SampleRecord]:
        return await run_safety(sampler, settings, judge, items, on_record)

    records, base = await _graded(
        task, context, cache, [p for p in prompts if p.id not in done], runner, done
    )
    raw = safety_metrics(records)
    metrics = {
        k: metric(v["value"], v["ci_low"], v["ci_high"], v["n"])
        for k, v in raw.items()
        if isinstance(v, dict)
    }
    metrics.update(_accuracy_metrics(records))
    metrics["unscored"] = metric(unscored_replies(records))
    return _outcome(
        task,
        records,
        base,
        metrics,
        len(done),
        {"refusal_judge": task.judge_model or "rules", "generation": asdict(settings)},
    )


async def _run_calibration(task: EvalTask, context: TaskContext, cache: TaskCache) -> TaskOutcome:
    """Accuracy (Wilson) plus ECE, Brier, confidence metrics with bootstrap CIs over questions.

    Per-question outcomes are Brier scores (not correct/incorrect), recomputed from the records'
    option probabilities so a resumed run's cached questions count the same; the registry
    therefore pairs them with its bootstrap, which tests the Brier headline itself.
    """
    from tinker_chief.evals.calibration import (
        MCQuestion,
        calibration_intervals,
        calibration_metrics,
        load_questions,
        run_calibration,
        scored_from_records,
    )

    questions = load_questions(_data_path(task, context) if task.data else None)[
        : task.settings.limit
    ]
    done = {k: v for k, v in cache.finished_records().items() if k in {q.id for q in questions}}

    async def runner(
        sampler: ModelSampler, items: list[MCQuestion], on_record: RecordSink
    ) -> list[SampleRecord]:
        return await run_calibration(sampler, items, on_record)

    records, base = await _graded(
        task, context, cache, [q for q in questions if q.id not in done], runner, done
    )
    scored = scored_from_records(records)
    raw = calibration_metrics(scored)
    if raw.get("n", 0) == 0:
        raise EvalError(
            f"task `{task.name}`: no question could be scored "
            f"({next((r.error for r in records if r.error), 'no questions')})"
        )
    metrics = {"accuracy": metric(raw["accuracy"], raw["ci_low"], raw["ci_high"], raw["n"])}
    metrics.update(
        _interval_metrics(calibration_intervals(scored, seed=task.settings.seed or 0), raw["n"])
    )
    # Outcomes stand for the run's headline metric in the registry's paired tests, so they are
    # kept only when that is Brier (a suite naming `ece` gets judged by CIs instead).
    briers = {q.id: q.brier for q in scored} if task.headline_metric == "brier" else {}
    return _outcome(
        task,
        records,
        base,
        metrics,
        len(done),
        {
            "scoring": "option-letter logprobs",
            "outcome": "per-question Brier score",
            "reliability": raw["reliability"],
        },
        scores=briers,
    )


def _interval_metrics(intervals: dict[str, Interval], n: int) -> dict[str, Metric]:
    return {name: metric(i.value, i.low, i.high, n) for name, i in intervals.items()}


async def _run_nll(task: EvalTask, context: TaskContext, cache: TaskCache) -> TaskOutcome:
    """Token-weighted `nll` (nats/token) and `bpb`, each with a bootstrap CI over conversations.

    Values are pooled from per-conversation parts in float64 (the cookbook's float32 numbers
    agree to ~1e-6). Per-sample outcomes are each conversation's NLL per token (lower is
    better), which the registry pairs with its bootstrap when two models share the file.
    """
    from tinker_chief.evals.evaluators import nll_intervals, sampler_nll_evaluator

    sampler = await _open(context)
    context.progress.start(task.name, 1, 0)
    evaluator = sampler_nll_evaluator(
        _data_path(task, context),
        sampler.base_model,
        name="x",
        limit=task.settings.limit,
        renderer=context.renderer,
    )
    scores = await evaluator.score(sampler.client)
    context.progress.advance(task.name)
    n = len(scores.conversations)
    metrics = _interval_metrics(nll_intervals(scores.conversations, seed=task.settings.seed), n)
    # Outcomes stand for the headline metric (see _run_calibration): kept when that is `nll`.
    samples = (
        {c.id: c.nll for c in scores.conversations if math.isfinite(c.nll)}
        if task.headline_metric == "nll"
        else {}
    )
    return TaskOutcome(
        task.name,
        task.kind,
        metrics,
        samples,
        {"conversations": n, "outcome": "per-conversation NLL per token"},
        sampler.base_model,
        binary=False,
        ran_samples=n,
    )


def _outcome(
    task: EvalTask,
    records: list[SampleRecord],
    base_model: str,
    metrics: dict[str, Metric],
    reused: int,
    settings: dict[str, object],
    scores: dict[str, float] | None = None,
) -> TaskOutcome:
    """Per-sample outcomes are the records' pass/fail, or `scores` when the task has its own."""
    samples = outcomes_by_id(records) if scores is None else scores
    return TaskOutcome(
        task.name,
        task.kind,
        metrics,
        samples,
        settings,
        base_model,
        binary=scores is None,
        reused_samples=reused,
        ran_samples=len(records) - reused,
    )


def _run_inspect(task: EvalTask, context: TaskContext) -> TaskOutcome:
    from tinker_chief.evals.inspect_runner import run_inspect_task
    from tinker_chief.evals.published_tasks import inspect_task_for

    context.progress.start(task.name, 1, 0)
    resolved = inspect_task_for(task, context.project_dir)
    conn = context.connection
    model_args: dict[str, object] = {"engine_api_key": conn.api_key} if conn.base_url else {}
    if context.renderer is not None:  # the provider's own model args: the same rule
        model_args["renderer"] = context.renderer.renderer
        if context.renderer.base_model is not None:
            model_args["renderer_for"] = context.renderer.base_model
    s = task.settings
    # A Task built from the registry already holds its arguments; a name takes them here.
    task_args = resolved.task_args if isinstance(resolved.task, str) else {}
    result = run_inspect_task(
        resolved.task,
        context.model,
        ProjectPaths(context.project_dir).inspect_logs,
        task_args=task_args,
        model_args=model_args,
        limit=s.limit,
        max_tokens=s.max_tokens,
        temperature=s.temperature,
        seed=s.seed,
        sandbox=resolved.sandbox,
        base_url=conn.base_url,
    )
    context.progress.advance(task.name)
    headline = result.headline()
    metrics = {name: metric(value, n=len(result.samples)) for name, value in result.metrics.items()}
    if headline and headline[0] != "accuracy" and "accuracy" not in metrics:
        metrics["accuracy"] = metrics[headline[0]]
    return TaskOutcome(
        task.name,
        task.kind,
        metrics,
        result.samples,
        {
            "inspect_task": result.task,
            "task_version": result.task_version,
            **result.settings,
            **(
                {"dataset": resolved.dataset, "sandbox": resolved.sandbox}
                if resolved.dataset
                else {}
            ),
        },
        log_location=result.log_path,
        binary=all(v in (0.0, 1.0) for v in result.samples.values()),
        ran_samples=len(result.samples),
        tokens=result.tokens,
    )


_ASYNC_KINDS = {
    "jsonl": _run_jsonl,
    "safety": _run_safety,
    "calibration": _run_calibration,
    "nll": _run_nll,
}


def run_task(task: EvalTask, context: TaskContext, cache: TaskCache) -> TaskOutcome:
    """Run one task, with the tokens its samplers prefilled and sampled and its wall time."""
    context = dataclasses.replace(context, usage=TokenUsage())
    started = time.perf_counter()
    if task.kind == "inspect":
        outcome = _run_inspect(task, context)
    else:
        runner = _ASYNC_KINDS.get(task.kind)
        if runner is None:
            raise EvalError(f"task `{task.name}`: unknown kind `{task.kind}`")
        outcome = asyncio.run(runner(task, context, cache))
    if not outcome.tokens:
        outcome.tokens = context.usage.since((0, 0))
    outcome.seconds = round(time.perf_counter() - started, 3)
    return outcome
