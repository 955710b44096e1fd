"""The promotion gate's inputs: which suite the project agreed on, and the rules (`[gate]`).

`GateRules` is the `[gate]` table of `chief.toml` (the planner embeds it; `extra="forbid"` so a
typo is an error, not a silently ignored rule). `SuiteRequirement` is the agreed eval suite as
the registry needs it: name, version hash, and per task the headline metric and safety
thresholds. It is built from an `evals.suite.EvalSuite` by duck typing (`from_suite`) so the
registry imports no other capability.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from typing import Annotated, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from tinker_chief.registry._scrub import scrub_text

# Metrics where smaller is better; matched case-insensitively as globs on the metric name.
DEFAULT_LOWER_IS_BETTER = (
    "*nll*",
    "*bpb*",
    "*bits_per_byte*",
    "*loss*",
    "*perplexity*",
    "*ece*",
    "*brier*",
    "*error*",
    "*over_refusal*",
    "*overconfidence*",
    "*underconfidence*",
    "*unscored*",
    "*_max",
)
# Metrics with no better direction: recorded and compared, never a regression. A calibrated model
# may well be less confident than its parent; its calibration shows in ece/brier instead.
DEFAULT_NEUTRAL = ("*mean_confidence*",)


class GateRules(BaseModel):
    """Rules for promotion to prod (the `[gate]` table of `chief.toml`)."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    alpha: float = Field(
        default=0.05, gt=0.0, lt=1.0, description="Significance level for a regression."
    )
    max_drop: float = Field(
        default=0.01,
        ge=0.0,
        description="Largest tolerated drop of a metric vs prod (0.01 = 1 point on 0-1).",
    )
    tolerances: dict[str, Annotated[float, Field(ge=0.0)]] = Field(
        default_factory=dict,
        description="Per-metric max drop, keyed `task/metric` or `metric`; overrides max_drop.",
    )
    safety_thresholds: dict[str, float] = Field(
        default_factory=dict,
        description=(
            "Minimum value per `task/metric` (or `metric`); keys ending in `_max` are maxima."
        ),
    )
    lower_is_better: list[str] = Field(
        default_factory=lambda: list(DEFAULT_LOWER_IS_BETTER),
        description="Glob patterns of metric names where smaller is better.",
    )
    neutral: list[str] = Field(
        default_factory=lambda: list(DEFAULT_NEUTRAL),
        description=(
            "Glob patterns of metric names with no better direction: never a regression, no `best`."
        ),
    )
    missing_evidence: Literal["fail", "pass"] = Field(
        default="fail",
        description="A drop beyond tolerance with no samples or CIs to test it: refuse or allow.",
    )
    bootstrap_resamples: int = Field(
        # Bounded: the gate resamples per compared metric while `chief promote` waits.
        default=10_000,
        ge=100,
        le=1_000_000,
        description="Paired bootstrap resamples.",
    )
    seed: int = Field(
        default=0, description="Bootstrap seed, so the gate's verdict is reproducible."
    )

    def tolerance(self, task: str, metric: str) -> float:
        return self.tolerances.get(f"{task}/{metric}", self.tolerances.get(metric, self.max_drop))

    def higher_is_better(self, metric: str) -> bool:
        return not _matches(metric, self.lower_is_better)

    def is_neutral(self, metric: str) -> bool:
        return _matches(metric, self.neutral)


def _matches(metric: str, patterns: list[str]) -> bool:
    name = metric.lower()
    return any(fnmatch.fnmatchcase(name, pattern.lower()) for pattern in patterns)


class TaskRequirement(BaseModel):
    """One task of the agreed suite: its headline metric and the thresholds it must meet."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    name: str
    headline_metric: str = "accuracy"
    thresholds: dict[str, float] = Field(
        default_factory=dict, description="Metric -> minimum (names ending in `_max`: maximum)."
    )


class _TaskLike(Protocol):
    @property
    def name(self) -> str: ...


class SuiteLike(Protocol):
    """What `SuiteRequirement.from_suite` reads: an `EvalSuite`, or anything with these (a task's
    `headline_metric` and `thresholds` are read when it has them)."""

    @property
    def name(self) -> str: ...
    @property
    def version(self) -> object: ...
    @property
    def tasks(self) -> Sequence[_TaskLike]: ...


class SuiteRequirement(BaseModel):
    """The suite every prod model must have finished, current-version results on."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    name: str
    version: str
    tasks: list[TaskRequirement]

    @classmethod
    def from_suite(cls, suite: SuiteLike) -> SuiteRequirement:
        """Build from an `EvalSuite` (or anything with `name`, `version`, `tasks`)."""
        tasks = [
            TaskRequirement(
                name=task.name,
                headline_metric=getattr(task, "headline_metric", "accuracy"),
                thresholds=dict(getattr(task, "thresholds", {}) or {}),
            )
            for task in suite.tasks
        ]
        return cls(name=suite.name, version=str(suite.version), tasks=tasks)

    def as_stored(self) -> SuiteRequirement:
        """This suite with its names as the registry stores them (key-looking text redacted), so
        it matches the runs recorded for it and no export repeats a key pasted into a name."""
        tasks = [
            TaskRequirement(
                name=scrub_text(t.name),
                headline_metric=scrub_text(t.headline_metric),
                thresholds={scrub_text(k): v for k, v in t.thresholds.items()},
            )
            for t in self.tasks
        ]
        name, version = scrub_text(self.name), scrub_text(self.version)
        return SuiteRequirement(name=name, version=version, tasks=tasks)

    def task_names(self) -> list[str]:
        return [task.name for task in self.tasks]

    def headline(self, task: str) -> str | None:
        return next((t.headline_metric for t in self.tasks if t.name == task), None)
