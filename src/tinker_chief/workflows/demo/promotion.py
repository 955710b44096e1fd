"""The demo's last act: compare base and checkpoint, then promote the better one through the gate.

`promote_better` takes the two suite results `chief demo` produced, decides which model is
better on the custom task, puts the base model in prod as the status quo (through the gate,
like any promotion), then asks the gate to promote the checkpoint against it. Nothing is
forced: a refusal is an outcome, returned with the gate's reasons. `write_registry_markdown`
writes MODEL_REGISTRY.md. The suite and rules are the project's own (`chief.toml`'s suite and
`[gate]`), as for `chief promote`; `chief demo` only prints the returned `DemoPromotion`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tinker_chief.errors import PromotionRejected
from tinker_chief.registry import Comparison, GateReport, GateRules, Registry, SuiteRequirement
from tinker_chief.workspace import Workspace

if TYPE_CHECKING:
    from tinker_chief.evals.runner import SuiteRunResult

STATUS_QUO = "the base model is the status quo"


@dataclass(frozen=True)
class GateStep:
    """One promotion to prod the demo asked for, and what the gate said."""

    ref: str
    why: str
    report: GateReport
    promoted: bool
    # The gate's reasons (or a changed-prod refusal).
    refusal: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class DemoPromotion:
    """What `promote_better` decided: the comparison, each gate verdict and who ended in prod."""

    task: str
    base_ref: str
    candidate_ref: str
    base_score: float | None  # the custom task's accuracy (None when that task failed)
    candidate_score: float | None
    better_ref: str
    comparison: Comparison
    alpha: float
    steps: list[GateStep] = field(default_factory=list)

    @property
    def promoted(self) -> list[str]:
        return [step.ref for step in self.steps if step.promoted]

    @property
    def prod_ref(self) -> str | None:
        """The model in prod after the demo (the last one the gate let through)."""
        return self.promoted[-1] if self.promoted else None

    @property
    def refusals(self) -> dict[str, list[str]]:
        return {step.ref: step.refusal for step in self.steps if not step.promoted}


def task_accuracy(result: SuiteRunResult, task: str) -> float | None:
    """`task`'s accuracy in a `SuiteRunResult`, None when the task failed or has none."""
    for outcome in result.tasks:
        if outcome.task == task and outcome.error is None:
            value = outcome.metrics.get("accuracy", {}).get("value")
            return float(value) if value is not None else None
    return None


def promote_better(
    project: Workspace,
    base_ref: str,
    candidate_ref: str,
    base_result: SuiteRunResult,
    candidate_result: SuiteRunResult,
    task: str,
) -> DemoPromotion:
    """Base to prod as the status quo, then the checkpoint through the gate if it is better on
    `task`.

    "Better" is a higher accuracy on `task` (a missing score counts as 0). The gate, not this
    function, decides whether the better model may replace prod: it checks every suite task
    against the model in prod (none, if the base itself was refused).
    """
    suite, rules = project.config.suite_requirement(), project.config.gate
    before, after = task_accuracy(base_result, task), task_accuracy(candidate_result, task)
    better = candidate_ref if (after or 0.0) > (before or 0.0) else base_ref
    with project.open_registry() as registry:
        comparison = registry.compare(
            [base_ref, candidate_ref], suite_version=suite.version, rules=rules
        )
        steps = [_through_gate(registry, base_ref, suite, rules, STATUS_QUO)]
        # Judged against the base in prod, or alone if the base was refused.
        if better == candidate_ref:
            steps.append(
                _through_gate(registry, candidate_ref, suite, rules, f"better on `{task}`")
            )
    return DemoPromotion(
        task, base_ref, candidate_ref, before, after, better, comparison, rules.alpha, steps
    )


def _through_gate(
    registry: Registry, ref: str, suite: SuiteRequirement, rules: GateRules, why: str
) -> GateStep:
    report = registry.check_promotion(ref, "prod", suite=suite, rules=rules)
    if not report.passed:
        return GateStep(ref, why, report, False, list(report.reasons))
    try:
        registry.apply_promotion(report, reason=f"demo: {why}")
    except PromotionRejected as exc:  # prod changed between check and apply
        return GateStep(ref, why, report, False, list(exc.reasons))
    return GateStep(ref, why, report, True)


def write_registry_markdown(project: Workspace) -> Path:
    """MODEL_REGISTRY.md in the project root, judged against the project's suite."""
    suite = project.config.suite_requirement()
    markdown = project.root / "MODEL_REGISTRY.md"
    with project.open_registry() as registry:
        markdown.write_text(registry.export_markdown(suite=suite), encoding="utf-8")
    return markdown
