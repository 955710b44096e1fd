"""Statistics every eval result carries: Wilson intervals and bootstrap means.

Proportions (accuracy, refusal rate) get Wilson score intervals, which stay inside [0, 1] and
behave at small n and near 0 or 1 where the normal approximation does not. Means of
non-binary scores (NLL, judge scores) get a percentile bootstrap with a fixed seed, so the same
outcomes always give the same interval. Per-sample outcomes are recorded by sample id; paired
tests between two models (McNemar, paired bootstrap) are the registry's (`registry.stats`).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

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


def bootstrap_mean(values: Sequence[float], resamples: int = 2000, seed: int = 0) -> Interval:
    """Percentile-bootstrap 95% interval of the mean of `values` (deterministic for a seed)."""
    if not values:
        return Interval(float("nan"), float("nan"), float("nan"))
    n = len(values)
    mean = sum(values) / n
    if n == 1:
        return Interval(mean, mean, mean)
    rng = random.Random(seed)
    means = sorted(sum(rng.choices(values, k=n)) / n for _ in range(resamples))
    low = means[int(0.025 * (resamples - 1))]
    high = means[int(math.ceil(0.975 * (resamples - 1)))]
    return Interval(mean, low, high)


def proportion_summary(outcomes: Sequence[bool]) -> dict[str, float]:
    """accuracy, n and the Wilson interval of a list of pass/fail outcomes."""
    interval = wilson_interval(sum(1 for o in outcomes if o), len(outcomes))
    return {"accuracy": interval.value, "n": len(outcomes), "ci_low": interval.low, "ci_high": interval.high}
