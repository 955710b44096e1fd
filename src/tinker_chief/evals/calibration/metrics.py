"""Calibration metrics from (confidence, correct) pairs: ECE, Brier, over/under-confidence.

ECE uses 15 equal-width confidence bins (Guo et al. 2017) over the confidence of the chosen
option; Brier is the multi-class score (sum over options of (p - y)^2, averaged), so a model
that spreads probability on wrong options pays even when its top choice is right.
`reliability` is the diagram's data: per bin, its bounds, count, mean confidence and accuracy.
`calibration_intervals` gives each scalar metric a 95% percentile-bootstrap interval over
questions, so the promotion gate can tell a calibration change from noise; a question's Brier
score is also its per-sample outcome (a proper scoring rule that decomposes per question).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import NotRequired, Required, TypedDict

from tinker_chief.evals.intervals import Interval, bootstrap, wilson_interval

ECE_BINS = 15


@dataclass(frozen=True)
class ScoredQuestion:
    id: str
    probabilities: list[float]
    answer_index: int

    # Cached (frozen dataclasses allow it: cached_property writes __dict__ directly): the
    # bootstrap recomputes every metric on ~1000 resamples of the same questions.

    @cached_property
    def predicted(self) -> int:
        return max(range(len(self.probabilities)), key=self.probabilities.__getitem__)

    @cached_property
    def confidence(self) -> float:
        return self.probabilities[self.predicted]

    @cached_property
    def correct(self) -> bool:
        return self.predicted == self.answer_index

    @cached_property
    def brier(self) -> float:
        return sum(
            (p - (1.0 if i == self.answer_index else 0.0)) ** 2
            for i, p in enumerate(self.probabilities)
        )


def _bin_of(confidence: float, bins: int) -> int:
    """Bin b holds confidences in (b/bins, (b+1)/bins]; bin 0 also holds 0."""
    return min(bins - 1, max(0, math.ceil(confidence * bins) - 1))


class ReliabilityBin(TypedDict):
    """One bin of the reliability diagram; confidence and accuracy only where it has questions."""

    low: float
    high: float
    count: int
    confidence: NotRequired[float]
    accuracy: NotRequired[float]


class CalibrationMetrics(TypedDict, total=False):
    """What `calibration_metrics` returns: only `n` (0) when nothing was scored."""

    n: Required[int]
    accuracy: float
    ci_low: float
    ci_high: float
    ece: float
    brier: float
    mean_confidence: float
    overconfidence: float
    underconfidence: float
    reliability: list[ReliabilityBin]


def reliability_bins(
    scored: Sequence[ScoredQuestion], bins: int = ECE_BINS
) -> list[ReliabilityBin]:
    members: list[list[ScoredQuestion]] = [[] for _ in range(bins)]
    for question in scored:
        members[_bin_of(question.confidence, bins)].append(question)
    table = []
    for b, group in enumerate(members):
        entry: ReliabilityBin = {"low": b / bins, "high": (b + 1) / bins, "count": len(group)}
        if group:
            entry["confidence"] = sum(q.confidence for q in group) / len(group)
            entry["accuracy"] = sum(1 for q in group if q.correct) / len(group)
        table.append(entry)
    return table


def scalar_metrics(scored: Sequence[ScoredQuestion], bins: int = ECE_BINS) -> dict[str, float]:
    """ece, brier, mean_confidence, overconfidence, underconfidence of a non-empty set."""
    n = len(scored)
    gaps = [
        (e["count"] / n, e["confidence"] - e["accuracy"])
        for e in reliability_bins(scored, bins)
        if e["count"]
    ]
    return {
        "ece": sum(w * abs(g) for w, g in gaps),
        "brier": sum(q.brier for q in scored) / n,
        "mean_confidence": sum(q.confidence for q in scored) / n,
        "overconfidence": sum(w * g for w, g in gaps if g > 0),
        "underconfidence": sum(w * -g for w, g in gaps if g < 0),
    }


def calibration_intervals(
    scored: Sequence[ScoredQuestion], bins: int = ECE_BINS, resamples: int = 1000, seed: int = 0
) -> dict[str, Interval]:
    """95% percentile-bootstrap interval over questions of each `scalar_metrics` value."""
    return bootstrap(scored, lambda sample: scalar_metrics(sample, bins), resamples, seed)


def calibration_metrics(
    scored: Sequence[ScoredQuestion], bins: int = ECE_BINS
) -> CalibrationMetrics:
    n = len(scored)
    if n == 0:
        return {"n": 0}
    accuracy = wilson_interval(sum(1 for q in scored if q.correct), n)
    scalars = scalar_metrics(scored, bins)
    return {
        "n": n,
        "accuracy": accuracy.value,
        "ci_low": accuracy.low,
        "ci_high": accuracy.high,
        "ece": scalars["ece"],
        "brier": scalars["brier"],
        "mean_confidence": scalars["mean_confidence"],
        "overconfidence": scalars["overconfidence"],
        "underconfidence": scalars["underconfidence"],
        "reliability": reliability_bins(scored, bins),
    }
