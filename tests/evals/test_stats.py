"""Statistics: Wilson intervals against known values, bootstrap determinism, paired outcomes."""

from __future__ import annotations

import math

import pytest

from tinker_chief.evals.intervals import bootstrap_mean, wilson_interval
from tinker_chief.evals.records import SampleRecord, summarize
from tinker_chief.registry import paired_bootstrap


def test_wilson_matches_reference_values():
    # Reference: statsmodels proportion_confint(8, 10, method="wilson") = (0.4902, 0.9433)
    interval = wilson_interval(8, 10)
    assert interval.value == pytest.approx(0.8)
    assert interval.low == pytest.approx(0.4902, abs=1e-4)
    assert interval.high == pytest.approx(0.9433, abs=1e-4)
    edge = wilson_interval(0, 20)
    assert edge.low == 0.0 and 0.1 < edge.high < 0.2


def test_wilson_rejects_impossible_counts_and_handles_zero_n():
    with pytest.raises(ValueError):
        wilson_interval(3, 2)
    empty = wilson_interval(0, 0)
    assert math.isnan(empty.value) and (empty.low, empty.high) == (0.0, 1.0)


def test_bootstrap_is_deterministic_and_brackets_the_mean():
    values = [0.1 * i for i in range(30)]
    a, b = bootstrap_mean(values, seed=3), bootstrap_mean(values, seed=3)
    assert a == b
    assert a.low < a.value < a.high
    assert bootstrap_mean([2.0]).low == 2.0


def test_eval_intervals_and_the_paired_test_share_one_bootstrap():
    """An eval's bootstrap interval of a mean is the registry's paired bootstrap against zeros:
    the same resamples and the same percentiles, so the two can never disagree on noise."""
    values = [((7 * i) % 11) / 10 for i in range(40)]
    for seed in (0, 5):
        alone = bootstrap_mean(values, resamples=500, seed=seed)
        paired = paired_bootstrap(values, [0.0] * len(values), resamples=500, seed=seed)
        assert alone.value == pytest.approx(paired.delta)
        assert alone.low == pytest.approx(paired.ci_low)
        assert alone.high == pytest.approx(paired.ci_high)


def test_summary_counts_unscored_and_errors_separately():
    records = [
        SampleRecord("a", [], "x", "x", correct=True),
        SampleRecord("b", [], "x", "y", correct=False),
        SampleRecord("c", [], "x", "?", correct=None, explanation="unparseable judge verdict"),
        SampleRecord("d", [], "x", None, error="sampling failed"),
    ]
    summary = summarize(records)
    assert summary["accuracy"] == 0.5 and summary["n"] == 2
    assert summary["unscored"] == 1 and summary["errors"] == 1 and summary["total"] == 4
