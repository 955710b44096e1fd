"""`run_demo`: the whole `chief demo` workflow as library calls, in six steps.

The demo project (`demo.scaffold`) planned by `planning.make_plan`; one local engine shared by
`workflows.evaluation.evaluate_model` (the base model, then the checkpoint) and
`training.train_project`; `demo.promotion.promote_better` (compare, then the gate); the paper
trail (MODEL_REGISTRY.md and `reports.write_report`). A `DemoObserver` hears each step and each
result, so the CLI (`cli/demo.py`) only prints. With a tracker (`track`), the training run, both
suite results and the gate's verdicts are mirrored into it, as `chief train`, `eval` and
`promote --track` would.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from tinker_chief.connection import Connection
from tinker_chief.errors import EvalError, TrainingError
from tinker_chief.evals.runner import ProgressSink, SuiteRunResult
from tinker_chief.planning import Plan, make_plan
from tinker_chief.planning.project_files import write_plan_files
from tinker_chief.reports import write_report
from tinker_chief.tracking.failsafe import Warn
from tinker_chief.tracking.mirror import Tracking, tracking_for
from tinker_chief.tracking.observer import fan_out
from tinker_chief.tracking.target import require_installed
from tinker_chief.training import Observer, TrainResult, train_project
from tinker_chief.workflows.demo.promotion import (
    DemoPromotion,
    promote_better,
    write_registry_markdown,
)
from tinker_chief.workflows.demo.scaffold import CUSTOM_TASK, DemoProject, create_demo_project
from tinker_chief.workflows.evaluation import Evaluation, evaluate_model
from tinker_chief.workspace import Workspace

STEPS = (
    "Project and plan (the doctrine picks every number)",
    "Local engine; evaluate the base model",
    "LoRA training through the tinker SDK",
    "Evaluate the trained checkpoint",  # + the checkpoint's registry ref
    "Compare, then promote the better model through the gate",
    "Paper trail",
)


class DemoObserver(Protocol):
    """What `run_demo` reports to, in this order (the CLI draws each step as a screen)."""

    def step(self, number: int, title: str) -> None: ...

    def planned(self, demo: DemoProject, plan: Plan, files: dict[str, Path]) -> None: ...

    def engine_started(self, base_url: str | None, state_dir: Path) -> None: ...

    def evaluating(self, label: str) -> AbstractContextManager[ProgressSink | None]: ...

    def evaluated(self, label: str, evaluation: Evaluation) -> None: ...

    def trainer(self) -> Observer | None: ...

    def trained(self, result: TrainResult) -> None: ...

    def promoted(self, promotion: DemoPromotion) -> None: ...


@dataclass(frozen=True)
class PaperTrail:
    registry_markdown: Path
    report: Path
    plan: Path


@dataclass(frozen=True)
class DemoRun:
    """Everything the demo made: the project, both suite results, the gate's decisions, the
    files."""

    demo: DemoProject
    base: SuiteRunResult
    tuned: SuiteRunResult
    candidate_ref: str
    promotion: DemoPromotion
    trail: PaperTrail


def run_demo(
    directory: Path,
    observer: DemoObserver,
    *,
    steps: int | None = None,
    base_model: str | None = None,
    track: str | None = None,
    warn: Warn = print,
) -> DemoRun:
    """Create, plan, evaluate, train, evaluate again, promote through the gate, write the files.
    `track`: an experiment tracker to mirror it into (`warn` hears its one warning if it fails)."""
    require_installed(track or "none")  # one line now, not after the demo's first minutes
    observer.step(1, STEPS[0])
    demo = create_demo_project(directory, max_steps=steps, base_model=base_model)
    project = demo.project
    plan = make_plan(project)
    plan_files = write_plan_files(project, plan)
    observer.planned(demo, plan, plan_files)
    tracking = tracking_for(project, track, warn)

    observer.step(2, STEPS[1])
    with project.connect(project.backend_choice("local")) as connection:
        observer.engine_started(connection.base_url, project.paths.engine_state)
        base_model = project.config.base_model
        base = _evaluate(observer, project, base_model, connection, "base model", tracking)

        observer.step(3, STEPS[2])
        trainer = fan_out(observer.trainer(), tracking.run_observer(project.root))
        result = train_project(project, connection=connection, observer=trainer)
        observer.trained(result)
        candidate_ref = result.final.registry_ref if result.final else None
        if candidate_ref is None:
            raise TrainingError("demo: training produced no checkpoint")

        observer.step(4, f"{STEPS[3]} {candidate_ref}")
        tuned = _evaluate(observer, project, candidate_ref, connection, "checkpoint", tracking)

    observer.step(5, STEPS[4])
    # run_suite registers the base model; without it there is nothing to gate.
    if base.model_ref is None:
        raise EvalError(f"demo: the base model {project.config.base_model} has no registry entry")
    promotion = promote_better(project, base.model_ref, candidate_ref, base, tuned, CUSTOM_TASK)
    if tracking.on:
        _track_verdicts(project, promotion, tracking)
    observer.promoted(promotion)

    observer.step(6, STEPS[5])
    trail = PaperTrail(
        write_registry_markdown(project), write_report(project.root), plan_files["markdown"]
    )
    return DemoRun(demo, base, tuned, candidate_ref, promotion, trail)


def _evaluate(
    observer: DemoObserver,
    project: Workspace,
    model: str,
    connection: Connection,
    label: str,
    tracking: Tracking,
) -> SuiteRunResult:
    with observer.evaluating(label) as progress:
        evaluation = evaluate_model(
            project,
            model,
            connection=connection,
            progress=progress,
            tracking=tracking,
        )
    observer.evaluated(label, evaluation)
    return evaluation.result


def _track_verdicts(project: Workspace, promotion: DemoPromotion, tracking: Tracking) -> None:
    """Each gate verdict and the status it left, on the version's tracker run."""
    with project.open_registry() as registry:
        for step in promotion.steps:
            verdict = "passed for prod" if step.promoted else "refused for prod"
            status = registry.get_model(step.ref).status
            tracking.log_status(registry, step.ref, status, verdict, step.refusal)
