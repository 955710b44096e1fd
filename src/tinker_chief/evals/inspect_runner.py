"""Run Inspect tasks on a model and read results back from Inspect's logs, failing loudly.

Inspect's CLI exits 0 even when a task errored or was cancelled, so every result here comes
from the log and a status other than `success` raises `EvalError` with the log's message.
`read_inspect_log` does the same for logs written by `inspect eval` itself (e.g. by the
planner's `scripts/run_inspect_evals.sh`). Results carry task name, version and settings.
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tinker_chief.errors import EvalError

if TYPE_CHECKING:
    from inspect_ai import Task
    from inspect_ai.log import EvalLog
    from inspect_ai.log import EvalSample as InspectSample
    from inspect_ai.model import Model


@dataclass
class InspectResult:
    task: str
    task_version: str
    model: str
    metrics: dict[str, float]
    samples: dict[str, float]
    settings: dict[str, object]
    log_path: str
    scorer: str | None = None
    extra: dict[str, object] = field(default_factory=dict)
    # prefill/tokens, sample/tokens from the log's usage
    tokens: dict[str, int] = field(default_factory=dict)

    def headline(self) -> tuple[str, float] | None:
        for name in ("accuracy", "mean"):
            if name in self.metrics:
                return name, self.metrics[name]
        return next(iter(self.metrics.items()), None)


def sample_key(sample: InspectSample) -> str:
    """The id an Inspect sample's outcome is recorded under (`id#epoch` past the first epoch)."""
    return f"{sample.id}#{sample.epoch}" if sample.epoch > 1 else str(sample.id)


def result_from_log(log: EvalLog) -> InspectResult:
    """Metrics and per-sample outcomes of a finished log; `EvalError` unless status is success."""
    from inspect_ai.scorer import value_to_float

    location = str(getattr(log, "location", "") or "")
    if log.status != "success":
        message = getattr(getattr(log, "error", None), "message", None) or "no error message"
        raise EvalError(
            f"inspect task `{log.eval.task}` ended with status `{log.status}`: {message} "
            f"(log: {location})"
        )
    scores = log.results.scores if log.results else []
    first = scores[0] if scores else None
    metrics = {name: float(m.value) for name, m in (first.metrics.items() if first else [])}
    to_float = value_to_float()
    samples: dict[str, float] = {}
    for sample in log.samples or []:
        if first is not None and sample.scores and first.name in sample.scores:
            samples[sample_key(sample)] = to_float(sample.scores[first.name].value)
    return InspectResult(
        task=log.eval.task,
        task_version=str(log.eval.task_version),
        model=log.eval.model,
        metrics=metrics,
        samples=samples,
        log_path=location,
        scorer=first.name if first else None,
        settings={
            "generate_config": log.eval.model_generate_config.model_dump(exclude_none=True),
            "task_args": dict(log.eval.task_args or {}),
            "limit": log.eval.config.limit,
            "epochs": log.eval.config.epochs,
            "packages": dict(log.eval.packages or {}),
        },
        tokens=_tokens(log),
    )


def _tokens(log: EvalLog) -> dict[str, int]:
    """Prompt (prefill) and completion (sample) tokens every model of the log reported."""
    from tinker_chief.evals.usage import PREFILL_KEY, SAMPLE_KEY

    usage = list((getattr(getattr(log, "stats", None), "model_usage", None) or {}).values())
    return {
        PREFILL_KEY: sum(u.input_tokens for u in usage),
        SAMPLE_KEY: sum(u.output_tokens for u in usage),
    }


def read_inspect_log(path: str | Path) -> InspectResult:
    from inspect_ai.log import read_eval_log

    return result_from_log(read_eval_log(str(path)))


def run_inspect_task(
    task: str | Task,
    model: str,
    log_dir: str | Path,
    *,
    task_args: dict[str, object] | None = None,
    model_args: dict[str, object] | None = None,
    limit: int | None = None,
    max_tokens: int | None = None,
    temperature: float | None = None,
    seed: int | None = None,
    sandbox: str | None = None,
    model_roles: dict[str, str | Model] | None = None,
    base_url: str | None = None,
) -> InspectResult:
    """Evaluate one task (name, path@task or Task) on `tinker/<model>` and return its result."""
    from inspect_ai import eval as inspect_eval

    # The provider is registered even without entry points.
    import tinker_chief.evals._inspect_registry  # noqa: F401

    # Tasks' loaders print progress; stdout may carry --json.
    with contextlib.redirect_stdout(sys.stderr):
        logs = inspect_eval(
            task,
            model=f"tinker/{model}",
            model_base_url=base_url,
            model_args=model_args or {},
            task_args=task_args or {},
            log_dir=str(log_dir),
            display="none",
            limit=limit,
            max_tokens=max_tokens,
            temperature=temperature,
            seed=seed,
            sandbox=sandbox,
            model_roles=model_roles,
            log_format="eval",
        )
    if not logs:
        raise EvalError(f"inspect produced no log for task {task!r}")
    return result_from_log(logs[0])
