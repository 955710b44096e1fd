"""Checks on what callers hand the registry, before anything is written.

Each failure is a RegistryError naming the field, what it got (scrubbed) and what was
expected, so a bad write from training or evals reads like a config error, not a SQLite one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import asdict

from tinker_chief.errors import RegistryError
from tinker_chief.registry._records import (
    BACKENDS,
    EXPORT_FORMATS,
    EXPORT_TARGETS,
    RECIPES,
    RUN_STATUSES,
    DataFields,
    DataSummary,
    LoraFields,
    LoraSpec,
    MetricValue,
    SampleOutcome,
    Usage,
)
from tinker_chief.registry._scrub import scrub_text
from tinker_chief.registry.names import model_name_problem


def check_choice(field: str, value: object, choices: Sequence[str]) -> None:
    if not isinstance(value, str) or value not in choices:
        raise RegistryError(
            f"`{field}` is {scrub_text(repr(value))}; expected one of {', '.join(choices)}"
        )


def check_model_fields(name: str, backend: str, recipe: str, tinker_path: str | None) -> None:
    problem = model_name_problem(name)
    if problem is not None:
        raise RegistryError(f"`name` is {scrub_text(repr(name))}; expected {problem}")
    check_choice("backend", backend, BACKENDS)
    check_choice("recipe", recipe, RECIPES)
    if tinker_path is not None and not tinker_path.startswith("tinker://"):
        raise RegistryError(
            f"`tinker_path` is {scrub_text(repr(tinker_path))}; expected a tinker:// path"
        )


def check_run_status(status: str) -> None:
    check_choice("status", status, RUN_STATUSES[1:])  # a run is created running; it ends otherwise


def check_outcomes(task: str, metrics: list[MetricValue], samples: list[SampleOutcome]) -> None:
    """Metric names unique, values finite, CI ordered; sample ids unique, scores finite."""
    seen: set[str] = set()
    for metric in metrics:
        where = f"task `{task}` metric `{metric.name}`"
        if not metric.name or metric.name in seen:
            raise RegistryError(f"{where}: metric names must be non-empty and unique within a run")
        seen.add(metric.name)
        if not _finite(metric.value):
            raise RegistryError(f"{where}: value is {metric.value!r}; expected a finite number")
        if (metric.ci_low is None) != (metric.ci_high is None) or (
            metric.ci_low is not None and not metric.ci_low <= metric.ci_high  # type: ignore[operator]
        ):
            raise RegistryError(
                f"{where}: ci_low/ci_high are {metric.ci_low!r}/{metric.ci_high!r}; "
                "expected both or neither, with ci_low <= ci_high"
            )
    ids: set[str] = set()
    for sample in samples:
        if sample.sample_id in ids:
            raise RegistryError(
                f"task `{task}`: duplicate sample id {scrub_text(repr(sample.sample_id))}"
            )
        ids.add(sample.sample_id)
        if not _finite(sample.score):
            raise RegistryError(
                f"task `{task}` sample {scrub_text(repr(sample.sample_id))}: score is "
                f"{sample.score!r}; expected a finite number"
            )


def check_usage(
    usage: Usage | None, *, eval_run: bool = False
) -> tuple[int | None, int | None, int | None, float | None]:
    """(train_tokens, prefill_tokens, sample_tokens, machine_seconds): counts non-negative integers,
    seconds a non-negative number, each or None; an eval run trains nothing."""
    usage = usage or Usage()
    if not isinstance(usage, Usage):
        raise RegistryError(f"`usage` is {type(usage).__name__}; expected a registry Usage")
    for name in ("train_tokens", "prefill_tokens", "sample_tokens"):
        value = getattr(usage, name)
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or value < 0
        ):
            raise RegistryError(
                f"`usage.{name}` is {value!r}; expected a non-negative integer or None"
            )
    seconds = usage.machine_seconds
    if seconds is not None and not (_finite(seconds) and seconds >= 0):
        raise RegistryError(
            f"`usage.machine_seconds` is {seconds!r}; expected a non-negative number or None"
        )
    if eval_run and usage.train_tokens is not None:
        raise RegistryError(
            "`usage.train_tokens` is set on an eval run; evals prefill and sample, never train"
        )
    return usage.train_tokens, usage.prefill_tokens, usage.sample_tokens, seconds


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def lora_dict(lora: LoraSpec | LoraFields | None) -> dict[str, object] | None:
    """The LoRA spec as a dict, after checking its fields and rank."""
    if lora is None:
        return None
    try:
        spec = lora if isinstance(lora, LoraSpec) else LoraSpec(**lora)
    except TypeError as exc:
        raise RegistryError(
            f"`lora`: {exc}; expected fields rank, train_mlp, train_attn, train_unembed"
        ) from None
    if not isinstance(spec.rank, int) or isinstance(spec.rank, bool) or spec.rank < 1:
        raise RegistryError(f"`lora.rank` is {spec.rank!r}; expected a positive integer")
    return asdict(spec)


def data_dict(data: DataSummary | DataFields | None) -> dict[str, object]:
    """The training-data summary as a dict, after checking it has the expected fields."""
    if isinstance(data, DataSummary):
        return data.to_dict()
    unknown = sorted(set(data or {}) - {"files", "examples", "tokens", "completion_tokens"})
    if unknown:
        raise RegistryError(
            f"`data` has unknown field(s) {unknown}; expected files, examples, tokens, "
            "completion_tokens"
        )
    try:
        return DataSummary.from_dict(data or {}).to_dict()
    except (TypeError, ValueError) as exc:
        raise RegistryError(
            f"`data`: {exc}; expected files [{{path, sha256, examples}}], examples, tokens, "
            "completion_tokens"
        ) from None


def check_export(
    format: str,
    target: str,
    location: str,
    weights: dict[str, str],
    max_abs_diff: float,
    tolerance: float,
) -> None:
    """An export row: known format and target, a location, file -> sha256 hex, finite numbers."""
    check_choice("format", format, EXPORT_FORMATS)
    check_choice("target", target, EXPORT_TARGETS)
    if not isinstance(location, str) or not location:
        raise RegistryError(
            f"`location` is {scrub_text(repr(location))}; expected a directory or a repo id"
        )
    if not weights or not all(
        isinstance(k, str) and isinstance(v, str) and re.fullmatch(r"[0-9a-f]{64}", v)
        for k, v in weights.items()
    ):
        raise RegistryError("`weights` must map each weight file to its sha256 (64 hex digits)")
    for field, value in (("max_abs_diff", max_abs_diff), ("tolerance", tolerance)):
        if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
            raise RegistryError(f"`{field}` is {value!r}; expected a finite number >= 0")
