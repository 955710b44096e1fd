"""Paired significance tests for comparing two models on the same samples.

- `mcnemar(a, b)`: pass/fail outcomes. Only discordant pairs carry information: b = A passed
  and B failed, c = the reverse. With fewer than 25 discordant pairs the exact two-sided
  binomial test (n = b + c, p = 1/2) is used; above, the chi-square statistic with continuity
  correction, (|b - c| - 1)^2 / (b + c), on one degree of freedom (McNemar 1947; Edwards 1948).
- `paired_bootstrap(a, b)`: per-sample scores. Resample sample indices with replacement and
  take the mean difference; the CI is the percentile interval and the two-sided p-value is
  twice the smaller tail mass at zero (Efron & Tibshirani 1993; Koehn 2004 for MT/NLP evals).
Both work on the sample ids the two runs share; `compare` and the gate use them.

The bootstrap itself (`bootstrap_draws`: seeded resamples of item indices, `percentile_interval`)
is the one every interval of chief uses: `paired_bootstrap` here and the eval results' intervals
(`evals.intervals.bootstrap`). It lives here because the registry may import nothing of ours
and evals may import the registry.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from tinker_chief.registry._records import SampleOutcome

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

EXACT_BELOW = 25


@dataclass(frozen=True)
class PairedTest:
    """Result of a paired test of A against B (`delta` = mean of A minus mean of B)."""

    method: Literal["mcnemar-exact", "mcnemar-chi2", "paired-bootstrap"]
    n: int
    delta: float
    p_value: float
    ci_low: float | None = None
    ci_high: float | None = None
    a_only: int | None = None  # McNemar: A passed, B failed
    b_only: int | None = None  # McNemar: B passed, A failed

    def significant(self, alpha: float) -> bool:
        return self.p_value < alpha

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def binomial_two_sided(k: int, n: int) -> float:
    """Exact two-sided p-value of seeing <= k successes (k <= n/2) in n fair coin flips."""
    if n == 0:
        return 1.0
    k = min(k, n - k)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2.0 * tail)


def mcnemar(a: list[bool], b: list[bool]) -> PairedTest:
    """McNemar's test on paired pass/fail outcomes (same order, same length)."""
    if len(a) != len(b):
        raise ValueError("mcnemar needs paired outcomes of equal length")
    a_only = sum(1 for x, y in zip(a, b) if x and not y)
    b_only = sum(1 for x, y in zip(a, b) if y and not x)
    discordant = a_only + b_only
    delta = (a_only - b_only) / len(a) if a else 0.0
    if discordant < EXACT_BELOW:
        return PairedTest(
            "mcnemar-exact",
            len(a),
            delta,
            binomial_two_sided(min(a_only, b_only), discordant),
            a_only=a_only,
            b_only=b_only,
        )
    statistic = (abs(a_only - b_only) - 1) ** 2 / discordant
    p_value = math.erfc(math.sqrt(statistic / 2))  # chi-square survival function, 1 dof
    return PairedTest("mcnemar-chi2", len(a), delta, p_value, a_only=a_only, b_only=b_only)


def bootstrap_draws(
    n: int,
    statistic: Callable[[np.ndarray], npt.ArrayLike],
    resamples: int,
    seed: int,
) -> np.ndarray:
    """`statistic` on `resamples` bootstrap resamples of `n` items, from one seeded stream.

    `statistic` gets a (k, n) matrix of item indices drawn with replacement, one resample per
    row, and returns k values (or a (k, m) array: m statistics of each resample). Rows come in
    chunks of about 2M indices, so 10k resamples of a large task never allocate one huge matrix.
    """
    import numpy as np  # only here: keeps `chief registry list` from paying numpy's import

    rng = np.random.default_rng(seed)
    chunk = max(1, 2_000_000 // n)
    parts = []
    for start in range(0, resamples, chunk):
        rows = min(resamples, start + chunk) - start
        parts.append(np.asarray(statistic(rng.integers(0, n, size=(rows, n))), dtype=float))
    return np.concatenate(parts)


def percentile_interval(
    draws: np.ndarray,
    confidence: float = 0.95,
) -> tuple[np.ndarray, np.ndarray]:
    """The percentile interval of bootstrap `draws` (per column when there are several)."""
    import numpy as np

    tail = (1 - confidence) / 2
    low, high = np.quantile(draws, [tail, 1 - tail], axis=0)
    return low, high


def paired_bootstrap(
    a: list[float],
    b: list[float],
    *,
    resamples: int = 10_000,
    seed: int = 0,
    confidence: float = 0.95,
) -> PairedTest:
    """Paired bootstrap of mean(a - b): percentile CI and two-sided p-value at zero."""
    import numpy as np

    if len(a) != len(b):
        raise ValueError("paired_bootstrap needs paired scores of equal length")
    diffs = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    n = len(diffs)
    if n == 0:
        return PairedTest("paired-bootstrap", 0, 0.0, 1.0)
    means = bootstrap_draws(n, lambda rows: diffs[rows].mean(axis=1), resamples, seed)
    # Add-one smoothing: a finite bootstrap never proves p = 0.
    below = (np.count_nonzero(means <= 0) + 1) / (resamples + 1)
    above = (np.count_nonzero(means >= 0) + 1) / (resamples + 1)
    low, high = percentile_interval(means, confidence)
    return PairedTest(
        "paired-bootstrap",
        n,
        float(diffs.mean()),
        float(min(1.0, 2 * min(below, above))),
        ci_low=float(low),
        ci_high=float(high),
    )


def unpaired_from_cis(
    a: float, a_low: float, a_high: float, b: float, b_low: float, b_high: float
) -> float:
    """Two-sided z-test p-value from two independent normal-approximation 95% CIs.

    Used only when per-sample outcomes are missing: standard errors are recovered as
    half-width / 1.96.
    """
    se = math.hypot((a_high - a_low) / (2 * 1.96), (b_high - b_low) / (2 * 1.96))
    if se == 0:
        return 0.0 if a != b else 1.0
    return math.erfc(abs(a - b) / se / math.sqrt(2))


def paired_on_samples(
    a: list[SampleOutcome], b: list[SampleOutcome], *, resamples: int = 10_000, seed: int = 0
) -> PairedTest | None:
    """Paired test of A vs B on the sample ids both have; None when they share none.

    McNemar when every shared sample has a pass/fail outcome on both sides, else the paired
    bootstrap on scores.
    """
    by_id = {s.sample_id: s for s in b}
    pairs = [(s, by_id[s.sample_id]) for s in a if s.sample_id in by_id]
    if not pairs:
        return None
    if all(x.passed is not None and y.passed is not None for x, y in pairs):
        return mcnemar([bool(x.passed) for x, _ in pairs], [bool(y.passed) for _, y in pairs])
    return paired_bootstrap(
        [x.score for x, _ in pairs], [y.score for _, y in pairs], resamples=resamples, seed=seed
    )
