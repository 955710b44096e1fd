"""`promote_better` on registry rows in a real SQLite file: who goes to prod, and why not.

The suite results are real `SuiteRunResult`/`TaskOutcome` objects and the eval rows are recorded
through the registry's API, as `chief eval` records them; no engine is needed (fast).
"""

from __future__ import annotations

from tests.training.conftest import make_project
from tinker_chief.evals.runner import SuiteRunResult
from tinker_chief.evals.tasks import TaskOutcome
from tinker_chief.registry import MetricValue, Registry, SampleOutcome
from tinker_chief.workflows.demo.promotion import promote_better
from tinker_chief.workspace import Workspace

TASKS = [
    {
        "name": "secret_code",
        "layer": "product",
        "kind": "jsonl",
        "data": "data/heldout.jsonl",
        "grader": "exact",
    },
    {
        "name": "calibration",
        "layer": "calibration",
        "kind": "calibration",
        "headline_metric": "brier",
    },
]


def _project(tmp_path):
    return Workspace.open(make_project(tmp_path, eval_suite={"name": "demo-suite", "tasks": TASKS}))


def _record(
    registry: Registry, project, ref: str, passes: list[bool], briers: list[float]
) -> SuiteRunResult:
    """Record both tasks for `ref` (accuracy from `passes`, Brier per question) and return the
    result."""
    suite = project.config.eval_suite
    accuracy = sum(passes) / len(passes)
    brier = sum(briers) / len(briers)
    registry.record_eval(
        ref,
        suite_name=suite.name,
        suite_version=suite.version,
        task="secret_code",
        headline_metric="accuracy",
        metrics=[MetricValue("accuracy", accuracy, n=len(passes))],
        samples=[SampleOutcome(f"s{i}", float(p), p) for i, p in enumerate(passes)],
        actor="t",
    )
    registry.record_eval(
        ref,
        suite_name=suite.name,
        suite_version=suite.version,
        task="calibration",
        headline_metric="brier",
        metrics=[MetricValue("brier", brier, n=len(briers))],
        samples=[SampleOutcome(f"q{i}", b) for i, b in enumerate(briers)],
        actor="t",
    )
    result = SuiteRunResult(ref, ref, suite.name, suite.version)
    result.tasks = [
        TaskOutcome("secret_code", "jsonl", {"accuracy": {"value": accuracy}}),
        TaskOutcome("calibration", "calibration", {"brier": {"value": brier}}),
    ]
    return result


def _run(tmp_path, base_passes, cand_passes, base_brier, cand_brier):
    project = _project(tmp_path)
    with Registry.open(project.registry_path) as registry:
        base_ref = registry.register_model(
            "base", base_model="tiny-random-llama", recipe="base"
        ).ref
        cand_ref = registry.register_model("tuned", base_model="tiny-random-llama").ref
        base = _record(registry, project, base_ref, base_passes, base_brier)
        cand = _record(registry, project, cand_ref, cand_passes, cand_brier)
    promotion = promote_better(project, base_ref, cand_ref, base, cand, "secret_code")
    with Registry.open(project.registry_path) as registry:
        return promotion, registry.prod_model()


def test_better_checkpoint_replaces_the_base_in_prod(tmp_path):
    promotion, prod = _run(
        tmp_path, [False] * 30, [True] * 25 + [False] * 5, [0.6] * 30, [0.3] * 30
    )
    assert (promotion.base_score, promotion.candidate_score) == (0.0, 25 / 30)
    assert promotion.better_ref == "tuned:v1" and promotion.promoted == ["base:v1", "tuned:v1"]
    assert promotion.prod_ref == prod.ref == "tuned:v1" and promotion.refusals == {}
    assert promotion.steps[1].report.prod_ref == "base:v1"  # judged against the status quo
    assert promotion.comparison.row("secret_code/accuracy").best == "tuned:v1"


def test_gate_refuses_a_better_checkpoint_with_a_real_calibration_regression(tmp_path):
    worse = [0.2] * 30 + [0.9] * 30
    promotion, prod = _run(tmp_path, [False] * 60, [True] * 60, [0.2] * 60, worse)
    assert promotion.better_ref == "tuned:v1" and promotion.promoted == ["base:v1"]
    assert prod.ref == "base:v1" == promotion.prod_ref
    reasons = promotion.refusals["tuned:v1"]
    assert any("calibration/brier" in r and "paired-bootstrap" in r for r in reasons), reasons


def test_checkpoint_that_is_not_better_is_not_put_to_the_gate(tmp_path):
    promotion, prod = _run(tmp_path, [True] * 10, [True] * 10, [0.3] * 10, [0.3] * 10)
    assert promotion.better_ref == "base:v1" and [s.ref for s in promotion.steps] == ["base:v1"]
    assert prod.ref == "base:v1"
