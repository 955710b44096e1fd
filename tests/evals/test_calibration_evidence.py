"""Statistical evidence for calibration and NLL: bootstrap intervals, Brier outcomes, the gate.

The gate judges a calibration drop from per-question Brier scores (paired bootstrap, the headline)
and from the bootstrap CIs of the other metrics; these tests build those rows the way `chief eval`
records them, in a real SQLite registry, and check that noise passes and a real drop does not.
"""

from __future__ import annotations

import random

import pytest

from tinker_chief.evals.calibration import (
    ScoredQuestion,
    calibration_intervals,
    calibration_metrics,
)
from tinker_chief.evals.evaluators import ConversationNLL, nll_intervals, pooled_nll
from tinker_chief.evals.intervals import bootstrap, bootstrap_mean
from tinker_chief.registry import (
    GateRules,
    MetricValue,
    Registry,
    SampleOutcome,
    SuiteRequirement,
    TaskRequirement,
)

SUITE = SuiteRequirement(
    name="gov", version="v1", tasks=[TaskRequirement(name="calibration", headline_metric="brier")]
)


def _questions(n: int, seed: int, skill: float = 0.7) -> list[ScoredQuestion]:
    """Four-option questions; the answer gets most mass with probability `skill`."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        weights = [rng.random() for _ in range(4)]
        answer = rng.randrange(4)
        favourite = answer if rng.random() < skill else (answer + 1) % 4
        weights[favourite] += 2.0
        total = sum(weights)
        out.append(ScoredQuestion(f"q{i:03d}", [w / total for w in weights], answer))
    return out


def _jitter(questions: list[ScoredQuestion], seed: int, amount: float) -> list[ScoredQuestion]:
    """The same questions with each probability vector nudged at random (no systematic change)."""
    rng = random.Random(seed)
    out = []
    for q in questions:
        weights = [max(1e-3, p + rng.uniform(-amount, amount)) for p in q.probabilities]
        total = sum(weights)
        out.append(ScoredQuestion(q.id, [w / total for w in weights], q.answer_index))
    return out


def _confidently_wrong(questions: list[ScoredQuestion], every: int) -> list[ScoredQuestion]:
    out = []
    for i, q in enumerate(questions):
        if i % every == 0:
            wrong = (q.answer_index + 1) % 4
            q = ScoredQuestion(
                q.id, [0.94 if j == wrong else 0.02 for j in range(4)], q.answer_index
            )
        out.append(q)
    return out


def test_bootstrap_contains_the_value_and_narrows_with_more_items():
    rng = random.Random(1)
    small = [rng.gauss(0, 1) for _ in range(20)]
    large = [rng.gauss(0, 1) for _ in range(400)]
    a, b = bootstrap_mean(small), bootstrap_mean(large)
    assert a.low <= a.value <= a.high and b.low <= b.value <= b.high
    assert (b.high - b.low) < (a.high - a.low) / 2
    both = bootstrap(small, lambda xs: {"mean": sum(xs) / len(xs), "max": max(xs)}, seed=4)
    assert both["mean"] == bootstrap_mean(small, seed=4) and both["max"].high == max(small)
    assert bootstrap([], lambda xs: {"x": 0.0}) == {}


def test_calibration_intervals_contain_values_and_narrow_with_more_questions():
    few, many = _questions(30, seed=2), _questions(300, seed=2)
    narrow, wide = calibration_intervals(many), calibration_intervals(few)
    raw = calibration_metrics(few)
    for name in ("ece", "brier", "mean_confidence", "overconfidence", "underconfidence"):
        assert wide[name].value == pytest.approx(raw[name])
        assert wide[name].low <= wide[name].value <= wide[name].high, name
        assert narrow[name].low <= narrow[name].value <= narrow[name].high, name
    for name in ("ece", "brier", "mean_confidence"):
        assert narrow[name].high - narrow[name].low < wide[name].high - wide[name].low, name
    assert calibration_intervals(few) == wide  # deterministic for the default seed


def test_brier_is_the_per_question_multiclass_score():
    q = ScoredQuestion("q", [0.7, 0.2, 0.1], 0)
    assert q.brier == pytest.approx(0.3**2 + 0.2**2 + 0.1**2)
    assert ScoredQuestion("q", [0.0, 1.0], 1).brier == 0.0


def test_nll_intervals_pool_conversations_by_tokens():
    parts = [
        ConversationNLL(
            str(i), nats=2.0 * (1 + i % 3) * 10, tokens=10.0, bpb_nats=5.0 + i % 2, bytes=40
        )
        for i in range(30)
    ]
    pooled = pooled_nll(parts)
    assert pooled["nll"] == pytest.approx(sum(p.nats for p in parts) / 300)
    intervals = nll_intervals(parts)
    for name in ("nll", "bpb"):
        assert intervals[name].low < intervals[name].value < intervals[name].high
        assert intervals[name].value == pytest.approx(pooled[name])
    # A long conversation weighs by its tokens, not as one item among equals.
    skewed = pooled_nll(
        [ConversationNLL("a", 10.0, 10.0, 0, 0), ConversationNLL("b", 90.0, 30.0, 0, 0)]
    )
    assert skewed["nll"] == pytest.approx(100 / 40)


def _record(reg: Registry, ref: str, scored: list[ScoredQuestion]) -> None:
    """Record a calibration run as `chief eval` does: CIs on every metric, Brier per question."""
    raw = calibration_metrics(scored)
    metrics = [MetricValue("accuracy", raw["accuracy"], raw["ci_low"], raw["ci_high"], raw["n"])]
    metrics += [
        MetricValue(name, i.value, i.low, i.high, raw["n"])
        for name, i in calibration_intervals(scored).items()
    ]
    reg.record_eval(
        ref,
        suite_name="gov",
        suite_version="v1",
        task="calibration",
        headline_metric="brier",
        metrics=metrics,
        samples=[SampleOutcome(q.id, q.brier) for q in scored],
        actor="test",
    )


def _gate(tmp_path, base: list[ScoredQuestion], candidate: list[ScoredQuestion]):
    rules = GateRules()
    with Registry.open(tmp_path / "registry.db") as reg:
        base_ref = reg.register_model("base", base_model="m", recipe="base").ref
        cand_ref = reg.register_model("tuned", base_model="m").ref
        _record(reg, base_ref, base)
        _record(reg, cand_ref, candidate)
        reg.promote(base_ref, "prod", suite=SUITE, rules=rules, actor="test")
        return reg.check_promotion(cand_ref, "prod", suite=SUITE, rules=rules)


def test_gate_accepts_a_calibration_drop_that_is_noise(tmp_path):
    base = _questions(40, seed=5)
    candidate = _jitter(base, seed=11, amount=0.25)
    drop = calibration_metrics(candidate)["brier"] - calibration_metrics(base)["brier"]
    assert drop > GateRules().max_drop  # worse beyond tolerance: the gate must weigh evidence
    report = _gate(tmp_path, base, candidate)
    assert report.passed, report.reasons
    assert any("calibration/brier" in n and "paired-bootstrap" in n for n in report.notes), (
        report.notes
    )


def test_gate_refuses_a_calibration_drop_that_is_not_noise(tmp_path):
    base = _questions(80, seed=5)
    report = _gate(tmp_path, base, _confidently_wrong(base, every=3))
    brier = [r for r in report.reasons if "calibration/brier" in r]
    assert brier and "paired-bootstrap" in brier[0], report.reasons
    assert any("calibration/ece" in r and "z-test on CIs" in r for r in report.reasons), (
        report.reasons
    )
