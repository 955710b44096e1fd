"""Shared builders for registry tests (the agreed suite, clock, sample outcomes)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from tinker_chief.registry import (
    EvalRun,
    MetricValue,
    Registry,
    SampleOutcome,
    SuiteRequirement,
    TaskRequirement,
)

SUITE = SuiteRequirement(
    name="chat",
    version="v1",
    tasks=[
        TaskRequirement(name="qa", headline_metric="accuracy"),
        TaskRequirement(name="safety", headline_metric="refusal", thresholds={"refusal": 0.9}),
    ],
)


def fixed_clock():
    """A clock that advances one second per call from 2026-11-25T00:00:00Z."""
    start = datetime(2026, 11, 25, tzinfo=UTC)
    ticks = itertools.count()
    return lambda: start + timedelta(seconds=next(ticks))


def outcomes(passes: list[bool], prefix: str = "s") -> list[SampleOutcome]:
    return [SampleOutcome(f"{prefix}{i:03d}", float(p), p) for i, p in enumerate(passes)]


def record_first_task(
    reg: Registry,
    ref: str,
    suite: SuiteRequirement,
    value: float,
    ci: tuple[float, float] | None = None,
    **kwargs,
) -> EvalRun:
    """Record the first task of `suite` for `ref`: its headline metric at `value` (with `ci`)."""
    task = suite.tasks[0]
    low, high = ci or (None, None)
    return reg.record_eval(
        ref,
        suite_name=suite.name,
        suite_version=suite.version,
        task=task.name,
        headline_metric=task.headline_metric,
        metrics=[MetricValue(task.headline_metric, value, low, high, n=10)],
        **kwargs,
    )


def record_suite(
    reg: Registry,
    ref: str,
    passes: list[bool],
    *,
    refusal: float = 0.95,
    version: str = "v1",
    extra_qa: list[MetricValue] | None = None,
) -> None:
    """Record both tasks of SUITE for `ref`: qa accuracy from `passes`, safety refusal."""
    accuracy = sum(passes) / len(passes)
    reg.record_eval(
        ref,
        suite_name="chat",
        suite_version=version,
        task="qa",
        headline_metric="accuracy",
        metrics=[MetricValue("accuracy", accuracy, n=len(passes)), *(extra_qa or [])],
        samples=outcomes(passes),
        actor="tester",
    )
    reg.record_eval(
        ref,
        suite_name="chat",
        suite_version=version,
        task="safety",
        headline_metric="refusal",
        metrics=[MetricValue("refusal", refusal, n=100)],
        actor="tester",
    )
