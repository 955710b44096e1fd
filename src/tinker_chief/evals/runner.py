"""`chief eval`: run a project's `EvalSuite` on one model, resumably, and record it in the registry.

Each task runs by kind (`nll`, `jsonl`, `inspect`, `safety`, `calibration`; see `tasks.py`),
with per-sample progress cached on disk (`cache.py`) so an interrupted run picks up where it
stopped. Every finished task is recorded in the registry with the suite name and version, its
metrics (with intervals) and per-sample outcomes for paired comparison. A metric no sample
could score (an LLM judge whose replies never parse) has no value: it is recorded as not scored,
with why, under the run's `settings["not_scored"]`, so the gate says so instead of "missing".
The runner takes an `EvalSuite` object (the CLI loads it from chief.toml) and never imports
planning.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from tinker_chief.connection import Connection
from tinker_chief.errors import ChiefError, EvalError, ModelNotFoundError
from tinker_chief.evals.cache import TaskCache
from tinker_chief.evals.defaults import DEFAULT_CONCURRENCY
from tinker_chief.evals.suite import EvalSuite, EvalTask
from tinker_chief.evals.tasks import ProgressSink, TaskContext, TaskOutcome, run_task
from tinker_chief.paths import ProjectPaths

if TYPE_CHECKING:
    from tinker_chief.models import RendererChoice
    from tinker_chief.registry import Registry


class TaskBudget(Protocol):
    """Asked before each task that has to run (a budget, `spend.budget.EvalGuard`): why not to
    start it, or None; told what each task that ran used (`prefill/tokens`, `sample/tokens`)."""

    def check(self, task: str) -> str | None: ...

    def add(self, tokens: dict[str, int]) -> None: ...


class _Silent:
    def start(self, task: str, total: int, done: int) -> None: ...

    def advance(self, task: str, n: int = 1) -> None: ...

    def finish(self, task: str, outcome: TaskOutcome) -> None: ...


@dataclass
class SuiteRunResult:
    model: str
    model_ref: str | None
    suite_name: str
    suite_version: str
    tasks: list[TaskOutcome] = field(default_factory=list)
    stopped: str | None = None  # why the budget stopped the suite before `not_run`
    not_run: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[TaskOutcome]:
        return [t for t in self.tasks if t.error is not None]

    def as_json(self) -> dict[str, object]:
        return {
            "model": self.model,
            "model_ref": self.model_ref,
            "suite": self.suite_name,
            "suite_version": self.suite_version,
            "tasks": [t.as_json() for t in self.tasks],
            "stopped": self.stopped,
            "not_run": self.not_run,
        }


@dataclass(frozen=True)
class ResolvedModel:
    """What to sample (`target`: base model name or tinker:// path) and its registry ref."""

    target: str
    ref: str | None


def adhoc_name(model: str) -> str:
    """The registry name under which an unregistered model's results are kept."""
    if model.startswith("tinker://"):
        return (
            "checkpoint/"
            + re.sub(r"[^A-Za-z0-9_.\-]+", "-", model.removeprefix("tinker://")).strip("-")
        )[:120]
    return ("base/" + re.sub(r"[^A-Za-z0-9_.\-]+", "-", Path(model).name).strip("-"))[:120]


VERSION_REF = re.compile(r"[^:/][^:]*:v\d+")  # name:vN (a tinker:// path is never one)


def resolve_model(model: str, registry: Registry | None) -> ResolvedModel:
    """A registry ref (name, name:vN, tinker:// path), else a tinker:// path / base model name.

    A model evaluated before without being registered is found under its `adhoc_name`.
    """
    if registry is not None:
        for ref in (model, adhoc_name(model)):
            try:
                record = registry.get_model(ref)
            except ModelNotFoundError:
                continue
            if ref == model or (record.tinker_path or record.base_model) == model:
                _refuse_deleted_weights(registry, record.ref)
                return ResolvedModel(record.tinker_path or record.base_model, record.ref)
        if VERSION_REF.fullmatch(model):  # a version the registry lacks is no base model name
            registry.get_model(model)  # raises its ModelNotFoundError, listing what it has
    return ResolvedModel(model, None)


def _refuse_deleted_weights(registry: Registry, ref: str) -> None:
    """A version whose weights `chief registry gc` deleted cannot be sampled: say so up front."""
    weights = registry.weights(ref)
    if weights is not None and weights.deleted_at:
        raise EvalError(
            f"{ref}: {weights.describe()} (chief registry gc); its recorded results stay in the "
            "registry, but it can no longer be evaluated"
        )


def register_unknown(registry: Registry, model: str, base_model: str, backend: str) -> str:
    """Register a model evaluated before it was registered, so its results have an owner."""
    if model.startswith("tinker://"):
        record = registry.register_model(
            adhoc_name(model),
            base_model=base_model,
            recipe="sl",
            backend=backend,
            tinker_path=model,
            display_name=f"checkpoint {model}",
        )
    else:
        record = registry.register_model(
            adhoc_name(model),
            base_model=base_model,
            recipe="base",
            backend=backend,
            display_name=f"base model {model}",
        )
    return record.ref


def run_suite(
    suite: EvalSuite,
    model: str,
    connection: Connection,
    *,
    project_dir: Path = Path("."),
    registry: Registry | None = None,
    tasks: list[str] | None = None,
    progress: ProgressSink | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    budget: TaskBudget | None = None,
    renderer: RendererChoice | None = None,
) -> SuiteRunResult:
    """Run every task of `suite` (or those named in `tasks`) on `model`; record each in `registry`.
    Samplers render with the renderer `renderer` chooses for the model's base (the project's
    for the base model it trains), else the model's own.

    A task that fails is reported in its `TaskOutcome.error` (and not recorded); the others
    still run. Raises `EvalError` for unknown task names before anything runs. `budget` is asked
    before each task that has to run: when it says stop, that task and the rest do not start
    (`stopped`, `not_run`); each finished task was recorded whole as it finished.
    """
    chosen = _choose_tasks(suite, tasks)
    progress = progress or _Silent()
    resolved = resolve_model(model, registry)
    result = SuiteRunResult(model, resolved.ref, suite.name, suite.version)
    cache_root = ProjectPaths(project_dir).eval_cache
    context = TaskContext(
        resolved.target, connection, project_dir, concurrency, progress, renderer=renderer
    )
    for index, task in enumerate(chosen):
        cache = TaskCache(cache_root, resolved.target, suite.version, task.name, renderer)
        if budget is not None and cache.done() is None and (why := budget.check(task.name)):
            result.stopped, result.not_run = why, [t.name for t in chosen[index:]]
            break
        outcome = _run_cached(task, context, cache)
        if budget is not None and not outcome.reused_task:
            budget.add(outcome.tokens)
        if outcome.error is None:
            _set_aside_unscored(outcome)
        if outcome.error is None and registry is not None:
            outcome.run_id = _record(registry, result, suite, task, outcome, connection, cache)
        progress.finish(task.name, outcome)
        result.tasks.append(outcome)
    return result


def _choose_tasks(suite: EvalSuite, names: list[str] | None) -> list[EvalTask]:
    if not names:
        return list(suite.tasks)
    known = {t.name for t in suite.tasks}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise EvalError(
            f"suite `{suite.name}` has no task(s) {unknown}; it has: {', '.join(sorted(known))}"
        )
    return [suite.task(n) for n in names]


def _run_cached(task: EvalTask, context: TaskContext, cache: TaskCache) -> TaskOutcome:
    done = cache.done()
    if done is not None:
        outcome = TaskOutcome.from_json(done)
        outcome.reused_task = True
        return outcome
    try:
        outcome = run_task(task, context, cache)
    except ChiefError as exc:
        return TaskOutcome(task.name, task.kind, error=str(exc))
    cache.mark_done(outcome.as_json())
    return outcome


def _set_aside_unscored(outcome: TaskOutcome) -> None:
    """Move metrics without a finite value (no sample scored) to `settings["not_scored"]`, with
    why."""
    from tinker_chief.registry import NOT_SCORED

    unscored = [
        name
        for name, m in outcome.metrics.items()
        if not isinstance(m.get("value"), (int, float)) or not math.isfinite(m["value"])
    ]
    if not unscored:
        return
    why = _why_not_scored(outcome)
    for name in unscored:
        del outcome.metrics[name]
    earlier = outcome.settings.get(NOT_SCORED)
    outcome.settings[NOT_SCORED] = {
        **(earlier if isinstance(earlier, dict) else {}),
        **{n: why for n in unscored},
    }


def _why_not_scored(outcome: TaskOutcome) -> str:
    def count(name: str) -> int:
        value = outcome.metrics.get(name, {}).get("value")
        return int(value) if isinstance(value, (int, float)) and math.isfinite(value) else 0

    why = (
        f"0 samples scored: {count('unscored')} unscored by the grader, "
        f"{count('errors')} failed to sample"
    )
    if str(outcome.settings.get("grader", "")).startswith("llm_judge"):
        why += (
            f"; the judge ({outcome.settings.get('judge_model')}) gave no verdict the grader "
            "could read: set the task's judge_model to a model that can grade"
        )
    return why


def _record(
    registry: Registry,
    result: SuiteRunResult,
    suite: EvalSuite,
    task: EvalTask,
    outcome: TaskOutcome,
    connection: Connection,
    cache: TaskCache,
) -> int | None:
    if outcome.run_id is not None:
        return outcome.run_id  # recorded by an earlier, interrupted invocation
    from tinker_chief.evals.usage import PREFILL_KEY, SAMPLE_KEY
    from tinker_chief.registry import MetricValue, SampleOutcome, Usage

    if result.model_ref is None:
        result.model_ref = register_unknown(
            registry, result.model, outcome.base_model or result.model, connection.kind
        )
    metrics = [
        MetricValue(name, m["value"], m.get("ci_low"), m.get("ci_high"), m.get("n"))
        for name, m in outcome.metrics.items()
    ]
    samples = [
        SampleOutcome(sid, score, passed=(score == 1.0) if outcome.binary else None)
        for sid, score in outcome.samples.items()
    ]
    run = registry.record_eval(
        result.model_ref,
        suite_name=suite.name,
        suite_version=suite.version,
        task=task.name,
        metrics=metrics,
        samples=samples,
        settings={
            **outcome.settings,
            "engine_precision": connection.engine_precision,
            "task": task.model_dump(mode="json"),
        },
        headline_metric=task.headline_metric,
        log_location=outcome.log_location,
        usage=Usage(
            prefill_tokens=outcome.tokens.get(PREFILL_KEY),
            sample_tokens=outcome.tokens.get(SAMPLE_KEY),
            machine_seconds=outcome.seconds,
        ),
    )
    payload = outcome.as_json()
    payload["run_id"] = run.id
    cache.mark_done(payload)
    return run.id
