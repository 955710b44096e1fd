"""Calibration metrics from (confidence, correct) pairs: ECE, Brier, over/under-confidence.

ECE uses 15 equal-width confidence bins (Guo et al. 2017) over the confidence of the chosen
option; Brier is the multi-class score (sum over options of (p - y)^2, averaged), so a model
that spreads probability on wrong options pays even when its top choice is right.
`reliability` is the diagram's data: per bin, its bounds, count, mean confidence and accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tinker_chief.evals.stats import wilson_interval

ECE_BINS = 15


@dataclass(frozen=True)
class ScoredQuestion:
    id: str
    probabilities: list[float]
    answer_index: int

    @property
    def predicted(self) -> int:
        return max(range(len(self.probabilities)), key=self.probabilities.__getitem__)

    @property
    def confidence(self) -> float:
        return self.probabilities[self.predicted]

    @property
    def correct(self) -> bool:
        return self.predicted == self.answer_index

    @property
    def brier(self) -> float:
        return sum((p - (1.0 if i == self.answer_index else 0.0)) ** 2 for i, p in enumerate(self.probabilities))


def reliability_bins(scored: list[ScoredQuestion], bins: int = ECE_BINS) -> list[dict[str, Any]]:
    table = []
    for b in range(bins):
        low, high = b / bins, (b + 1) / bins
        members = [q for q in scored if low < q.confidence <= high or (b == 0 and q.confidence == 0.0)]
        entry: dict[str, Any] = {"low": low, "high": high, "count": len(members)}
        if members:
            entry["confidence"] = sum(q.confidence for q in members) / len(members)
            entry["accuracy"] = sum(1 for q in members if q.correct) / len(members)
        table.append(entry)
    return table


def calibration_metrics(scored: list[ScoredQuestion], bins: int = ECE_BINS) -> dict[str, Any]:
    n = len(scored)
    if n == 0:
        return {"n": 0}
    table = reliability_bins(scored, bins)
    gaps = [(e["count"] / n, e["confidence"] - e["accuracy"]) for e in table if e["count"]]
    accuracy = wilson_interval(sum(1 for q in scored if q.correct), n)
    return {
        "n": n,
        "accuracy": accuracy.value,
        "ci_low": accuracy.low,
        "ci_high": accuracy.high,
        "ece": sum(w * abs(g) for w, g in gaps),
        "brier": sum(q.brier for q in scored) / n,
        "mean_confidence": sum(q.confidence for q in scored) / n,
        "overconfidence": sum(w * g for w, g in gaps if g > 0),
        "underconfidence": sum(w * -g for w, g in gaps if g < 0),
        "reliability": table,
    }
