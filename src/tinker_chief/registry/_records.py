"""Typed records the registry stores and returns: models, eval runs, metrics, samples, history.

These frozen dataclasses are the registry's boundary types. Writers (training, evals) build
`LoraSpec`, `DataSummary`, `MetricValue` and `SampleOutcome` and pass them to `Registry`;
readers (reports, CLI) get `ModelRecord`, `EvalRun`, `StatusChange` and `AuditEntry` back.
Every record has `to_dict()` giving plain JSON types, used by `--json` output and the export.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NotRequired, TypedDict, TypeVar

Backend = Literal["local", "tinker"]
Recipe = Literal["sl", "rl", "dpo", "distill", "base"]
Status = Literal["candidate", "staging", "prod", "retired"]
RunStatus = Literal["running", "finished", "failed", "cancelled"]

BACKENDS: tuple[str, ...] = ("local", "tinker")
RECIPES: tuple[str, ...] = ("sl", "rl", "dpo", "distill", "base")
STATUSES: tuple[str, ...] = ("candidate", "staging", "prod", "retired")
RUN_STATUSES: tuple[str, ...] = ("running", "finished", "failed", "cancelled")
# The key of an eval run's settings mapping each metric no sample could score to why (see
# `EvalRun.not_scored`): such a metric has no value, and the gate reports it as not scored.
NOT_SCORED = "not_scored"


class _AsDict:
    """Mixin: `to_dict()` as plain JSON-able types (tuples become lists)."""

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]


@dataclass(frozen=True)
class LoraSpec(_AsDict):
    """The LoRA adapter shape (Tinker's `create_lora_training_client` arguments)."""

    rank: int
    train_mlp: bool = True
    train_attn: bool = True
    train_unembed: bool = False


class LoraFields(TypedDict, total=False):
    """`LoraSpec` as a mapping (what `Registry.register_model` also accepts); `rank` is needed."""

    rank: int
    train_mlp: bool
    train_attn: bool
    train_unembed: bool


class DataFileFields(TypedDict):
    """`DataFile` as a mapping, as the registry stores it."""

    path: str
    sha256: str
    examples: NotRequired[int | None]


class DataFields(TypedDict, total=False):
    """`DataSummary` as a mapping, as the registry stores it (and callers may hand it)."""

    files: list[DataFileFields]
    examples: int | None
    tokens: int | None
    completion_tokens: int | None


@dataclass(frozen=True)
class DataFile(_AsDict):
    """One training-data file, identified by content hash so lineage survives renames."""

    path: str
    sha256: str
    examples: int | None = None


@dataclass(frozen=True)
class DataSummary(_AsDict):
    """What a model was trained on; counts are totals over `files`."""

    files: tuple[DataFile, ...] = ()
    examples: int | None = None
    tokens: int | None = None
    completion_tokens: int | None = None

    @classmethod
    def from_dict(cls, raw: DataFields) -> DataSummary:
        files = tuple(DataFile(**f) for f in raw.get("files", ()))
        return cls(files, raw.get("examples"), raw.get("tokens"), raw.get("completion_tokens"))


@dataclass(frozen=True)
class Usage(_AsDict):
    """What a model version took to make, or an eval run to run: tokens through forward_backward
    (`train_tokens`), prompts prefilled and tokens sampled (what Tinker bills), and the machine
    seconds it ran (the local engine's cost). None: not recorded."""

    train_tokens: int | None = None
    prefill_tokens: int | None = None
    sample_tokens: int | None = None
    machine_seconds: float | None = None

    @property
    def recorded(self) -> bool:
        return any(v is not None for v in dataclasses.astuple(self))

    @classmethod
    def total(cls, usages: list[Usage]) -> Usage:
        """The sum of several (an eval's runs); a field none of them recorded stays None."""

        return cls(
            train_tokens=_sum_recorded(u.train_tokens for u in usages),
            prefill_tokens=_sum_recorded(u.prefill_tokens for u in usages),
            sample_tokens=_sum_recorded(u.sample_tokens for u in usages),
            machine_seconds=_sum_recorded(u.machine_seconds for u in usages),
        )

    def describe(
        self,
        backend: str,
        price: Mapping[str, object] | None = None,
        no_price: str = "no known price",
    ) -> str:
        """In words: the tokens, then on Tinker's cloud the dollars at `price` ($/M tokens for
        `train`, `sample`, `prefill`, with `as_of` and `source`) or `no_price`; on the local engine
        the machine time (there is no bill)."""
        if not self.recorded:
            return "not recorded (made before chief recorded usage)"
        counts = {
            "train": self.train_tokens or 0,
            "prefill": self.prefill_tokens or 0,
            "sample": self.sample_tokens or 0,
        }
        text = (
            f"{counts['train']:,} tokens trained, " if self.train_tokens is not None else ""
        ) + f"{counts['prefill']:,} prefilled, {counts['sample']:,} sampled"
        if backend == "tinker":
            if price is None:
                return f"{text}; {no_price}"
            dollars = sum(counts[k] * _rate(price.get(k)) for k in counts) / 1e6
            prices = f"{price.get('source')} prices as of {price.get('as_of')}"
            return f"{text}; ${dollars:,.4f} at {prices}"
        seconds = (
            "machine time not recorded"
            if self.machine_seconds is None
            else f"{self.machine_seconds:,.1f} s of machine time"
        )
        return f"{text}; {seconds} on the local engine (no Tinker bill)"


_Count = TypeVar("_Count", int, float)


def _sum_recorded(values: Iterable[_Count | None]) -> _Count | None:
    """The sum of the recorded values; None when none was recorded."""
    recorded = [v for v in values if v is not None]
    return sum(recorded) if recorded else None


def _rate(value: object) -> float:
    """A price table's $/M tokens; a missing (or unset) rate costs nothing."""
    return float(value) if isinstance(value, int | float) and value else 0.0


@dataclass(frozen=True)
class ModelRecord(_AsDict):
    """One registered checkpoint. `ref` ("name:vN") is how every command names it."""

    id: int
    name: str
    version: int
    display_name: str
    tinker_path: str | None
    backend: str
    base_model: str
    recipe: str
    lora: LoraSpec | None
    optimizer: dict[str, object]
    data: DataSummary
    parent_ref: str | None
    training_run_id: str | None
    training_step: int | None
    config_hash: str | None
    # The training config as recorded, loosely typed: readers (publish) take nested settings
    # straight from it.
    config: dict[str, Any]
    status: str
    created_at: str
    usage: Usage = field(default_factory=Usage)

    @property
    def ref(self) -> str:
        return f"{self.name}:v{self.version}"

    def to_dict(self) -> dict[str, object]:
        out = dataclasses.asdict(self)
        out["ref"] = self.ref
        return out


@dataclass(frozen=True)
class MetricValue(_AsDict):
    """A metric of one eval run: value with optional confidence interval and sample count."""

    name: str
    value: float
    ci_low: float | None = None
    ci_high: float | None = None
    n: int | None = None

    def to_dict(self) -> dict[str, object]:  # explicit: asdict's deep copies dominate large exports
        return {
            "name": self.name,
            "value": self.value,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "n": self.n,
        }


@dataclass(frozen=True)
class SampleOutcome(_AsDict):
    """One sample's result on the run's headline metric, kept for paired comparisons.

    `passed` is set for pass/fail tasks (McNemar); `score` always (paired bootstrap).
    """

    sample_id: str
    score: float
    passed: bool | None = None
    detail: str | None = None


def not_scored_in(settings: Mapping[str, object]) -> dict[str, str]:
    """An eval run's `settings[NOT_SCORED]`: metric name -> why it has no value."""
    value = settings.get(NOT_SCORED)
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


@dataclass(frozen=True)
class EvalRun(_AsDict):
    """One task of one suite evaluated on one model, with its metrics once finished."""

    id: int
    model_ref: str
    suite_name: str
    suite_version: str
    task: str
    headline_metric: str | None
    settings: dict[str, object]
    status: str
    started_at: str
    finished_at: str | None
    log_location: str | None
    error: str | None
    metrics: dict[str, MetricValue] = field(default_factory=dict)
    usage: Usage = field(default_factory=Usage)

    def metric(self, name: str) -> MetricValue | None:
        return self.metrics.get(name)

    @property
    def not_scored(self) -> dict[str, str]:
        """Metrics no sample could score, each with why (`settings["not_scored"]`); they have no
        value."""
        return not_scored_in(self.settings)

    def to_dict(self) -> dict[str, object]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["metrics"] = {name: metric.to_dict() for name, metric in self.metrics.items()}
        out["usage"] = self.usage.to_dict()
        return out


@dataclass(frozen=True)
class StatusChange(_AsDict):
    """A row of a model's status history."""

    model_ref: str
    from_status: str | None
    to_status: str
    at: str
    actor: str
    reason: str
    forced: bool = False


@dataclass(frozen=True)
class AuditEntry(_AsDict):
    """A registry-changing command: who, when, what, on which model, with details."""

    id: int
    at: str
    actor: str
    command: str
    target: str | None
    details: dict[str, object]


@dataclass(frozen=True)
class Selection(_AsDict):
    """`chief select`'s choice of the candidate of a scope (`sweep:<id>` or `run:<id>`)."""

    id: int
    scope: str
    model_ref: str
    at: str
    actor: str
    reason: str
    details: dict[str, object]
    current: bool = (
        True  # the scope's latest mark (its candidate); False once a later mark superseded it
    )


EXPORT_FORMATS: tuple[str, ...] = ("adapter", "merged")
EXPORT_TARGETS: tuple[str, ...] = ("dir", "hub")


@dataclass(frozen=True)
class Export(_AsDict):
    """One verified export of a version (`chief export`, `chief publish`): a PEFT adapter or a
    merged model, written to a directory (`target` "dir", `location` its path) or pushed to a hub
    repository (`target` "hub", `location` the repo id, with the commit and its URL).

    `weights` maps each weight file to its sha256; `max_abs_diff` is the round-trip check's
    largest next-token log-prob difference from the serving backend, at most `tolerance`."""

    id: int
    model_ref: str
    at: str
    actor: str
    format: str
    target: str
    location: str
    commit_sha: str | None
    url: str | None
    weights: dict[str, str]
    max_abs_diff: float
    tolerance: float
    details: dict[str, object]
