"""Statistics every eval result carries: Wilson intervals and bootstrap intervals.

Proportions (accuracy, refusal rate) get Wilson score intervals, which stay inside [0, 1] and
behave at small n and near 0 or 1 where the normal approximation does not. Any other statistic
of a set of items (a mean score, token-weighted NLL, ECE or Brier over questions) gets a
percentile bootstrap over the items (`bootstrap`) with a fixed seed, so the same outcomes always
give the same interval; its resampling and percentiles are the registry's (`registry.stats`),
the same code as the paired bootstrap between two models. Per-sample outcomes are recorded by
sample id; paired tests between two models (McNemar, paired bootstrap) are the registry's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from tinker_chief.registry.stats import bootstrap_draws, percentile_interval

if TYPE_CHECKING:
    import numpy as np

T = TypeVar("T")

# z for a two-sided 95% interval; the only level chief reports.
Z95 = 1.959963984540054


@dataclass(frozen=True)
class Interval:
    """A point estimate with a 95% interval."""

    value: float
    low: float
    high: float

    def as_dict(self) -> dict[str, float]:
        return {"value": self.value, "low": self.low, "high": self.high}


def wilson_interval(successes: int, n: int, z: float = Z95) -> Interval:
    """Wilson score interval for `successes` out of `n` (n=0 gives the vacuous [0, 1])."""
    if n < 0 or successes < 0 or successes > n:
        raise ValueError(f"need 0 <= successes <= n, got successes={successes}, n={n}")
    if n == 0:
        return Interval(float("nan"), 0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # Round away float noise at the edges (p=0 gives centre == half up to ~1e-17).
    low, high = centre - half, centre + half
    return Interval(p, 0.0 if low < 1e-12 else low, 1.0 if high > 1 - 1e-12 else high)


def bootstrap(
    items: Sequence[T],
    statistic: Callable[[Sequence[T]], Mapping[str, float]],
    resamples: int = 2000,
    seed: int = 0,
) -> dict[str, Interval]:
    """Percentile-bootstrap 95% intervals of each statistic `statistic(items)` returns.

    Items are resampled with replacement (`resamples` times, deterministic for a seed) and
    every named statistic is computed on each resample, so several statistics of one set
    (ECE, Brier, ...) share the resamples. The interval is widened to include the point
    estimate: a percentile interval of a statistic biased under resampling (ECE grows with
    noise) can otherwise miss it, and a wider interval only makes the gate more cautious.
    """
    if not items:
        return {}
    point = dict(statistic(items))
    if len(items) == 1:
        return {name: Interval(value, value, value) for name, value in point.items()}
    names = list(point)

    def of_resamples(rows: np.ndarray) -> list[list[float]]:
        values = (statistic([items[i] for i in row]) for row in rows.tolist())
        return [[value[name] for name in names] for value in values]

    lows, highs = percentile_interval(bootstrap_draws(len(items), of_resamples, resamples, seed))
    return {
        name: Interval(point[name], min(float(low), point[name]), max(float(high), point[name]))
        for name, low, high in zip(names, lows, highs, strict=True)
    }


def bootstrap_mean(values: Sequence[float], resamples: int = 2000, seed: int = 0) -> Interval:
    """Percentile-bootstrap 95% interval of the mean of `values` (deterministic for a seed)."""
    if not values:
        return Interval(float("nan"), float("nan"), float("nan"))
    return bootstrap(values, lambda xs: {"mean": sum(xs) / len(xs)}, resamples, seed)["mean"]


def proportion_summary(outcomes: Sequence[bool]) -> dict[str, float]:
    """accuracy, n and the Wilson interval of a list of pass/fail outcomes."""
    interval = wilson_interval(sum(1 for o in outcomes if o), len(outcomes))
    return {
        "accuracy": interval.value,
        "n": len(outcomes),
        "ci_low": interval.low,
        "ci_high": interval.high,
    }
