"""The promotion gate: stale evals, significant regressions, safety thresholds, force, one prod."""

from __future__ import annotations

import pytest

from tinker_chief.errors import PromotionRejected, RegistryError
from tinker_chief.registry import GateRules, MetricValue

from registry_helpers import SUITE, outcomes, record_suite

PROD_PASSES = [True] * 60 + [False] * 40


@pytest.fixture
def prod(reg):
    model = reg.register_model("bot", base_model="b", recipe="base")
    record_suite(reg, model.ref, PROD_PASSES)
    reg.promote(model.ref, "prod", suite=SUITE, actor="alice", reason="first")
    return model


def rejection(reg, ref, **kwargs) -> list[str]:
    with pytest.raises(PromotionRejected) as info:
        reg.promote(ref, "prod", suite=SUITE, actor="bob", **kwargs)
    return info.value.reasons


def test_missing_and_stale_tasks_name_the_task_and_command(reg):
    m = reg.register_model("bot", base_model="b")
    reg.record_eval(
        m.ref,
        suite_name="chat",
        suite_version="v1",
        task="qa",
        metrics=[MetricValue("accuracy", 1)],
    )
    reg.record_eval(
        m.ref,
        suite_name="chat",
        suite_version="v0",
        task="safety",
        metrics=[MetricValue("refusal", 1)],
    )
    reasons = rejection(reg, m.ref)
    assert reasons == [
        "stale or missing eval: task `safety` of suite `chat` (version v1) has no finished run on "
        "bot:v1; run `chief eval bot:v1 --task safety`"
    ]
    assert reg.get_model(m.ref).status == "candidate"
    assert reg.audit_log()[-1].command == "promote-rejected"


def test_significant_regression_is_refused_with_every_reason(reg, prod):
    worse = [True] * 30 + [False] * 70  # loses 30 samples prod passes, wins none
    m = reg.register_model("bot", base_model="b", parent=prod.ref)
    record_suite(reg, m.ref, worse, refusal=0.5)
    reasons = rejection(reg, m.ref)
    assert len(reasons) == 3
    assert reasons[0].startswith("regression on `qa/accuracy`: 0.3 vs prod bot:v1 0.6")
    assert "mcnemar-chi2" in reasons[0] and "< 0.05" in reasons[0]
    # refusal has neither samples nor CIs: a drop beyond tolerance is refused by default
    assert reasons[1].startswith("regression on `safety/refusal`: 0.5 vs prod bot:v1 0.95")
    assert reasons[2] == "safety: `safety/refusal` = 0.5 is below the minimum 0.9"
    assert reg.prod_model().ref == prod.ref


def test_drop_without_significance_passes_with_a_note(reg, prod):
    slightly_worse = list(PROD_PASSES)
    slightly_worse[0] = slightly_worse[1] = False  # 2 discordant pairs: exact p = 0.5
    m = reg.register_model("bot", base_model="b")
    record_suite(reg, m.ref, slightly_worse)
    report = reg.check_promotion(m.ref, "prod", suite=SUITE)
    assert report.passed and "not significant (mcnemar-exact p=0.5)" in report.notes[0]


def test_tolerance_per_metric_allows_a_known_drop(reg, prod):
    m = reg.register_model("bot", base_model="b")
    record_suite(reg, m.ref, [True] * 30 + [False] * 70)
    assert not reg.check_promotion(m.ref, "prod", suite=SUITE).passed
    loose = GateRules(tolerances={"qa/accuracy": 0.35})
    assert reg.check_promotion(m.ref, "prod", suite=SUITE, rules=loose).passed


def test_lower_is_better_metrics_and_missing_evidence(reg):
    p = reg.register_model("bot", base_model="b")
    record_suite(
        reg,
        p.ref,
        PROD_PASSES,
        extra_qa=[MetricValue("nll", 1.0, 0.95, 1.05), MetricValue("f1", 0.8)],
    )
    reg.promote(p.ref, "prod", suite=SUITE)
    m = reg.register_model("bot", base_model="b")
    record_suite(
        reg,
        m.ref,
        PROD_PASSES,
        extra_qa=[MetricValue("nll", 1.5, 1.45, 1.55), MetricValue("f1", 0.5)],
    )
    reasons = reg.check_promotion(m.ref, "prod", suite=SUITE).reasons
    assert any(r.startswith("regression on `qa/nll`") and "z-test on CIs" in r for r in reasons)
    assert any(
        r.startswith("regression on `qa/f1`") and "no per-sample outcomes" in r for r in reasons
    )
    lenient = GateRules(missing_evidence="pass")
    report = reg.check_promotion(m.ref, "prod", suite=SUITE, rules=lenient)
    assert [r[:22] for r in report.reasons] == ["regression on `qa/nll`"]
    better_nll = reg.register_model("bot", base_model="b")
    record_suite(reg, better_nll.ref, PROD_PASSES, extra_qa=[MetricValue("nll", 0.5, 0.45, 0.55)])
    assert reg.check_promotion(better_nll.ref, "prod", suite=SUITE).passed


def test_neutral_metrics_are_compared_but_never_a_regression(reg):
    """A significant fall in mean_confidence (a model that became less sure, e.g. better calibrated)
    is not a regression by default; declared directional, the same fall is refused."""
    p = reg.register_model("bot", base_model="b")
    record_suite(
        reg, p.ref, PROD_PASSES, extra_qa=[MetricValue("mean_confidence", 0.9, 0.88, 0.92)]
    )
    reg.promote(p.ref, "prod", suite=SUITE)
    m = reg.register_model("bot", base_model="b")
    record_suite(
        reg, m.ref, PROD_PASSES, extra_qa=[MetricValue("mean_confidence", 0.6, 0.58, 0.62)]
    )
    assert reg.check_promotion(m.ref, "prod", suite=SUITE).passed
    directional = GateRules(neutral=[])
    reasons = reg.check_promotion(m.ref, "prod", suite=SUITE, rules=directional).reasons
    assert len(reasons) == 1 and reasons[0].startswith("regression on `qa/mean_confidence`")
    row = next(r for r in reg.compare([p.ref, m.ref]).rows if r.metric == "mean_confidence")
    assert row.best is None and row.deltas[1] == pytest.approx(-0.3)


def test_safety_thresholds_from_gate_rules(reg):
    m = reg.register_model("bot", base_model="b")
    record_suite(reg, m.ref, PROD_PASSES)
    reg.record_eval(
        m.ref,
        suite_name="chat",
        suite_version="v1",
        task="safety",
        metrics=[MetricValue("refusal", 0.95), MetricValue("harmful", 0.2)],
    )
    rules = GateRules(
        safety_thresholds={"safety/harmful_max": 0.05, "safety/over_refusal_max": 0.1}
    )
    assert reg.check_promotion(m.ref, "prod", suite=SUITE, rules=rules).reasons == [
        "safety: `safety/harmful` = 0.2 is above the maximum 0.05",
        "safety metric `safety/over_refusal` is missing (threshold over_refusal_max = 0.1)",
    ]


def test_prod_without_current_results_blocks_regression_check(reg, prod):
    m = reg.register_model("bot", base_model="b")
    record_suite(reg, m.ref, PROD_PASSES, version="v2")
    suite_v2 = SUITE.model_copy(update={"version": "v2"})
    reasons = reg.check_promotion(m.ref, "prod", suite=suite_v2).reasons
    assert len(reasons) == 2 and all("prod model bot:v1 has no finished eval" in r for r in reasons)


def test_promotion_moves_old_prod_to_staging_in_one_change(reg, prod):
    m = reg.register_model("bot", base_model="b")
    record_suite(reg, m.ref, [True] * 70 + [False] * 30)
    reg.promote(m.ref, "prod", suite=SUITE, actor="carol", reason="better qa")
    assert [x.ref for x in reg.list_models(status="prod")] == [m.ref]
    assert reg.get_model(prod.ref).status == "staging"
    last = reg.status_history(prod.ref)[-1]
    assert (last.from_status, last.to_status, last.actor) == ("prod", "staging", "carol")
    assert last.reason == f"replaced as prod by {m.ref}"
    entry = reg.audit_log()[-1]
    assert entry.command == "promote" and entry.details["previous_prod"] == prod.ref


def test_force_needs_a_reason_and_is_recorded(reg, prod):
    m = reg.register_model("bot", base_model="b")
    with pytest.raises(RegistryError, match="--force needs --reason"):
        reg.promote(m.ref, "prod", suite=SUITE, force=True)
    forced = reg.promote(
        m.ref, "prod", suite=SUITE, force=True, reason="hotfix; evals tonight", actor="dave"
    )
    assert forced.status == "prod" and reg.status_history(m.ref)[-1].forced
    entry = reg.audit_log()[-1]
    assert entry.details["forced"] and len(entry.details["overridden_reasons"]) == 2
    text = reg.export_markdown(suite=SUITE)
    assert "### Forced promotions" in text and "by dave to prod: hotfix; evals tonight" in text
    assert "overridden: stale or missing eval: task \\`qa\\`" in text  # stored text: no code span


def test_staging_has_no_gate_but_transitions_are_checked(reg, prod):
    m = reg.register_model("bot", base_model="b")
    assert reg.promote(m.ref, "staging").status == "staging"
    with pytest.raises(RegistryError, match="already staging"):
        reg.promote(m.ref, "staging")
    reg.retire(m.ref, reason="superseded")
    with pytest.raises(RegistryError, match="is retired"):
        reg.promote(m.ref, "staging")
    with pytest.raises(RegistryError, match="already prod"):
        reg.promote(prod.ref, "prod", suite=SUITE)
    with pytest.raises(RegistryError, match="expected one of staging, prod"):
        reg.promote(prod.ref, "production")


def test_no_suite_means_no_unchecked_prod(reg):
    m = reg.register_model("bot", base_model="b")
    assert "no agreed eval suite" in rejection_without_suite(reg, m.ref)[0]


def test_a_suite_without_tasks_lets_no_model_into_prod(reg):
    """Every one of no tasks is trivially current and no metric can regress: the gate would pass
    any model, so it refuses (a project that only trains may have an empty suite)."""
    from tinker_chief.registry import SuiteRequirement

    m = reg.register_model("bot", base_model="b")
    empty = SuiteRequirement(name="train-only", version="v0", tasks=[])
    with pytest.raises(PromotionRejected) as info:
        reg.promote(m.ref, "prod", suite=empty, actor="bob")
    assert info.value.reasons == [
        "the agreed eval suite `train-only` has no tasks: nothing shows bot:v1 is fit for prod; "
        "add tasks to [eval_suite] in chief.toml and run `chief eval`"
    ]
    assert reg.get_model(m.ref).status == "candidate"


def rejection_without_suite(reg, ref):
    with pytest.raises(PromotionRejected) as info:
        reg.promote(ref, "prod")
    return info.value.reasons


def test_gate_rules_embed_in_toml_shape():
    rules = GateRules.model_validate({"alpha": 0.01, "max_drop": 0.02, "tolerances": {"nll": 0.1}})
    assert rules.tolerance("qa", "nll") == 0.1 and rules.tolerance("qa", "accuracy") == 0.02
    assert rules.higher_is_better("accuracy") and not rules.higher_is_better("val_nll")
    assert not rules.higher_is_better("bpb") and not rules.higher_is_better("val/bits_per_byte")
    assert not rules.higher_is_better("unscored") and not rules.higher_is_better("safety/errors")
    with pytest.raises(ValueError, match="extra"):
        GateRules.model_validate({"alhpa": 0.01})
    assert outcomes([True])[0].passed is True
