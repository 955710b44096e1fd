"""McNemar and paired bootstrap against hand-computed cases."""

from __future__ import annotations

import math

import pytest

from tinker_chief.registry import SampleOutcome, mcnemar, paired_bootstrap
from tinker_chief.registry.stats import binomial_two_sided, paired_on_samples, unpaired_from_cis


def pairs(
    a_only: int, b_only: int, both: int = 10, neither: int = 10
) -> tuple[list[bool], list[bool]]:
    a = [True] * a_only + [False] * b_only + [True] * both + [False] * neither
    b = [False] * a_only + [True] * b_only + [True] * both + [False] * neither
    return a, b


def test_mcnemar_exact_small_discordant_counts():
    # b=5, c=1, n=6: p = 2 * (C(6,0) + C(6,1)) / 2^6 = 2 * 7/64
    test = mcnemar(*pairs(5, 1))
    assert test.method == "mcnemar-exact" and (test.a_only, test.b_only) == (5, 1)
    assert test.p_value == pytest.approx(14 / 64)
    assert test.delta == pytest.approx(4 / 26)
    assert mcnemar(*pairs(6, 0)).p_value == pytest.approx(2 / 64)  # significant at 5%
    assert mcnemar(*pairs(0, 0)).p_value == 1.0  # no discordant pairs: no evidence
    assert binomial_two_sided(3, 6) == 1.0


def test_mcnemar_chi_square_with_continuity_correction():
    # b=30, c=10: chi2 = (|30-10| - 1)^2 / 40 = 9.025; p = P(chi2_1 > 9.025) = 0.0026636...
    test = mcnemar(*pairs(30, 10))
    assert test.method == "mcnemar-chi2"
    assert test.p_value == pytest.approx(math.erfc(math.sqrt(9.025 / 2)))
    assert test.p_value == pytest.approx(0.0026636, rel=1e-3)
    with pytest.raises(ValueError):
        mcnemar([True], [True, False])


def test_paired_bootstrap_known_cases():
    constant = paired_bootstrap([0.5] * 30, [0.4] * 30, resamples=2000)
    assert constant.delta == pytest.approx(0.1)
    assert (constant.ci_low, constant.ci_high) == (pytest.approx(0.1), pytest.approx(0.1))
    assert constant.p_value == pytest.approx(2 / 2001)  # every resample is above zero
    balanced = paired_bootstrap([1.0, 0.0] * 50, [0.0, 1.0] * 50, resamples=2000)
    assert balanced.delta == 0.0 and balanced.p_value > 0.5
    assert balanced.ci_low < 0 < balanced.ci_high
    assert paired_bootstrap([1.0, 0.0] * 50, [0.0, 1.0] * 50, resamples=2000) == balanced  # seeded


def test_paired_on_samples_uses_shared_ids_and_picks_the_test():
    a = [SampleOutcome(f"q{i}", 1.0, True) for i in range(8)] + [
        SampleOutcome("only-a", 0.0, False)
    ]
    b = [SampleOutcome(f"q{i}", 0.0, False) for i in range(8)] + [
        SampleOutcome("only-b", 1.0, True)
    ]
    test = paired_on_samples(a, b)
    assert test.method == "mcnemar-exact" and test.n == 8 and test.a_only == 8
    assert test.p_value == pytest.approx(2 / 2**8)
    scores = paired_on_samples(
        [SampleOutcome("x", 0.9), SampleOutcome("y", 0.7)],
        [SampleOutcome("x", 0.5), SampleOutcome("y", 0.5)],
        resamples=500,
    )
    assert scores.method == "paired-bootstrap" and scores.delta == pytest.approx(0.3)
    assert paired_on_samples(a, [SampleOutcome("zzz", 1.0, True)]) is None


def test_unpaired_z_from_cis():
    # SEs 0.05 each: z = 0.2 / (0.05 * sqrt 2) = 2.828 -> p = 0.00468
    p = unpaired_from_cis(
        0.7, 0.7 - 1.96 * 0.05, 0.7 + 1.96 * 0.05, 0.5, 0.5 - 1.96 * 0.05, 0.5 + 1.96 * 0.05
    )
    assert p == pytest.approx(0.00468, rel=1e-2)
