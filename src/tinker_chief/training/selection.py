"""`chief select`: choose the candidate of a sweep or a training run, cheap evidence first.

The doctrine's offline comparison, done for the user:
1. candidates: each sweep point's last checkpoint (`--sweep`), or each checkpoint of one run
   (`--run`); every one is already registered;
2. the cheap layer: the validation NLL the run logged at the checkpoint's step picks a shortlist
   (default the best 3; without validation data, the final train loss);
3. the full agreed suite (`evals.runner.run_suite`, recorded in the registry as `chief eval`
   records it) runs on the shortlist only;
4. the best by the headline metric of the selection task (default the suite's first `product`
   task, else its first task) wins, with a paired test (McNemar or paired bootstrap on the shared
   samples) against the runner-up. No significant difference at the gate's `alpha` is a tie, and
   a tie goes to the cheaper model: the smaller LoRA rank, then the fewer training steps;
5. the registry records the choice as the scope's selection (`Registry.mark_selected`), which is
   not a promotion: `chief promote` and its gate still decide what serves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinker_chief.errors import TrainingError
from tinker_chief.evals.runner import run_suite
from tinker_chief.paths import ProjectPaths
from tinker_chief.registry import Registry
from tinker_chief.registry.stats import paired_on_samples
from tinker_chief.training.runlog import RunLog
from tinker_chief.training.spec import TrainSpec, stored_spec
from tinker_chief.training.sweep import Sweep, load_sweep, run_results, sweep_dirs

DEFAULT_SHORTLIST = 3


@dataclass
class Candidate:
    """A registered checkpoint and what the cheap layer knows about it."""

    ref: str
    label: str  # sweep point name, or "step N"
    run_id: str
    step: int
    lora_rank: int
    learning_rate: float
    val_nll: float | None  # logged at this step (final train loss where there is no validation data)
    headline: float | None = None  # the selection task's headline metric, for the shortlist
    eval_run_id: int | None = None

    @property
    def cost(self) -> tuple[int, int]:
        return (self.lora_rank, self.step)


@dataclass
class SelectionResult:
    scope: str  # "sweep:<id>" or "run:<id>"
    candidates: list[Candidate]  # best validation NLL first
    shortlist: list[Candidate]  # best headline first
    chosen: Candidate
    task: str | None = None
    metric: str | None = None
    higher_is_better: bool = True
    runner_up: Candidate | None = None
    test: Any = None  # registry PairedTest of the leader vs the runner-up
    tie: bool = False
    reason: str = ""
    failed_tasks: list[str] = field(default_factory=list)

    def details(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "metric": self.metric,
            "tie": self.tie,
            "runner_up": self.runner_up.ref if self.runner_up else None,
            "test": self.test.to_dict() if self.test is not None else None,
            "shortlist": [
                {"ref": c.ref, "label": c.label, "val_nll": c.val_nll, "headline": c.headline} for c in self.shortlist
            ],
        }


# ----------------------------------------------------------------------------- candidates


def _spec_of(run_dir: Path) -> TrainSpec:
    return stored_spec(RunLog(run_dir).spec_json(), run_dir)


def sweep_candidates(project_dir: Path, sweep: Sweep) -> list[Candidate]:
    """Each finished point's last checkpoint (the run's candidate)."""
    out = []
    for p in sweep.points:
        if p.status == "finished" and p.candidate and p.run_id and not p.candidate.startswith("tinker://"):
            out.append(
                Candidate(
                    p.candidate,
                    p.name,
                    p.run_id,
                    p.steps_done,
                    p.lora_rank,
                    p.learning_rate,
                    p.final_val_nll if p.final_val_nll is not None else p.final_loss,
                )
            )
    return out


def run_candidates(project_dir: Path, run_id: str) -> list[Candidate]:
    """Each registered checkpoint of the run, with the validation NLL logged at its step."""
    run_dir = ProjectPaths(project_dir).runs / run_id
    if not (run_dir / "run.json").exists():
        raise TrainingError(f"no training run {run_id!r} under {ProjectPaths(project_dir).runs}")
    log = RunLog(run_dir)
    spec = _spec_of(run_dir)
    nll_at = {r["step"]: r["val/nll"] for r in log.metrics() if isinstance(r.get("val/nll"), (int, float))}
    out = [
        Candidate(
            c.registry_ref,
            f"step {c.step}",
            run_id,
            c.step,
            spec.lora.rank,
            spec.optimizer.learning_rate,
            nll_at.get(c.step),
        )
        for c in log.checkpoints()
        if c.registry_ref is not None and c.step > 0
    ]
    if out and all(c.val_nll is None for c in out):  # no validation NLL at any checkpoint step
        out[-1].val_nll = run_results(run_dir)[1]  # the last one's final train loss, the one number there is
    return out


def default_scope(project_dir: Path) -> tuple[str | None, str | None]:
    """(sweep id, run id): the latest run's sweep if it belongs to one, else the latest run."""
    latest = RunLog.latest(project_dir)
    if latest is None:
        raise TrainingError(
            f"nothing to select from: no training run under {ProjectPaths(project_dir).runs}; "
            "run `chief train` or `chief sweep` first"
        )
    for sweep_dir in reversed(sweep_dirs(project_dir)):
        sweep = Sweep.load(sweep_dir)
        if any(p.run_id == latest.run_id for p in sweep.points):
            return sweep.sweep_id, None
    return None, latest.run_id


def shortlist_by_nll(candidates: Sequence[Candidate], size: int) -> list[Candidate]:
    """The `size` best by the cheap layer (cheaper first among equals); candidates it has no value
    for come after, the most trained first."""
    valued = sorted((c for c in candidates if c.val_nll is not None), key=lambda c: (c.val_nll or 0.0, c.cost))
    rest = sorted((c for c in candidates if c.val_nll is None), key=lambda c: -c.step)
    return (valued + rest)[:size]


# ----------------------------------------------------------------------------- selection


def selection_task(suite: Any, name: str | None) -> Any | None:
    """The task whose headline metric names the best: `name`, else the first product task, else the first."""
    if name is not None:
        try:
            return suite.task(name)
        except KeyError:
            raise TrainingError(
                f"--task: suite `{suite.name}` has no task {name!r}; it has: "
                f"{', '.join(t.name for t in suite.tasks) or 'none'}"
            ) from None
    product = [t for t in suite.tasks if t.layer == "product"]
    return (product or list(suite.tasks) or [None])[0]


def _headline(result: Any, task: Any) -> tuple[float | None, int | None]:
    for outcome in result.tasks:
        if outcome.task == task.name and outcome.error is None:
            value = outcome.metrics.get(task.headline_metric, {}).get("value")
            return (float(value) if isinstance(value, (int, float)) else None), outcome.run_id
    return None, None


def decide(
    shortlist: list[Candidate], higher_is_better: bool, alpha: float, registry: Any
) -> tuple[Candidate, Candidate | None, Any, bool]:
    """(chosen, runner-up, paired test, tie) from the shortlist's headline values."""
    scored = [c for c in shortlist if c.headline is not None]
    if not scored:
        return shortlist[0], (shortlist[1] if len(shortlist) > 1 else None), None, False
    ranked = sorted(
        scored,
        key=lambda c: ((-c.headline if higher_is_better else c.headline) if c.headline is not None else 0.0, c.cost),
    )
    leader = ranked[0]
    if len(ranked) == 1:
        return leader, None, None, False
    runner_up = ranked[1]
    test = None
    if leader.eval_run_id is not None and runner_up.eval_run_id is not None:
        test = paired_on_samples(registry.samples(leader.eval_run_id), registry.samples(runner_up.eval_run_id))
    tie = test is None or not test.significant(alpha)
    if tie and runner_up.cost < leader.cost:
        return runner_up, leader, test, True
    return leader, runner_up, test, tie


def _reason(result: SelectionResult) -> str:
    c = result.chosen
    if result.metric is None or c.headline is None:
        return f"best validation NLL ({c.val_nll})" if c.val_nll is not None else "the only candidate"
    text = f"{result.task}/{result.metric} {c.headline:.4g}"
    other = result.runner_up
    if other is None:
        return text
    versus = f"vs {other.ref} {other.headline:.4g}" if other.headline is not None else f"vs {other.ref}"
    p = f", {result.test.method} p={result.test.p_value:.3g}" if result.test is not None else ", no shared samples"
    if result.tie and c.cost < other.cost:
        return (
            f"{text} {versus}: no significant difference{p}; the tie goes to the cheaper model "
            f"(rank {c.lora_rank}, {c.step} steps)"
        )
    if result.tie and c.headline == other.headline:
        return f"{text} {versus}: no significant difference{p}; no cheaper, so the better validation NLL decides"
    if result.tie:
        return f"{text} {versus}: ahead, but not significantly{p}; the runner-up is no cheaper"
    return f"{text} {versus}: significantly better{p}"


@dataclass
class SelectionPlan:
    """What `chief select` will evaluate, decided before any backend is reached."""

    scope: str
    candidates: list[Candidate]
    shortlist: list[Candidate]
    task: Any | None  # the suite task whose headline metric decides (None: an empty suite)


def plan_selection(
    project: Any,
    *,
    sweep_id: str | None = None,
    run_id: str | None = None,
    shortlist: int = DEFAULT_SHORTLIST,
    task: str | None = None,
) -> SelectionPlan:
    """The scope (default the latest run's sweep, or the latest run), its candidates and the shortlist
    by the cheap layer; every bad input is a one-line `TrainingError` here, before connecting."""
    if sweep_id is not None and run_id is not None:
        raise TrainingError("give one of --sweep ID or --run ID, not both")
    if shortlist < 1:
        raise TrainingError(f"--shortlist: expected a positive number, got {shortlist}")
    if sweep_id is None and run_id is None:
        sweep_id, run_id = default_scope(project.root)
    if sweep_id is not None:
        sweep = load_sweep(project.root, sweep_id)
        scope, candidates = f"sweep:{sweep.sweep_id}", sweep_candidates(project.root, sweep)
    else:
        assert run_id is not None
        scope, candidates = f"run:{run_id}", run_candidates(project.root, run_id)
    if not candidates:
        raise TrainingError(f"{scope}: no finished, registered checkpoint to select from")
    chosen_task = selection_task(project.config.eval_suite, task)
    ordered = sorted(candidates, key=lambda c: (c.val_nll is None, c.val_nll or 0.0))
    return SelectionPlan(scope, ordered, shortlist_by_nll(candidates, shortlist), chosen_task)


def run_selection(project: Any, plan: SelectionPlan, connection: Any, progress: Any = None) -> SelectionResult:
    """The full suite on the shortlist (recorded), the decision, and its mark in the registry."""
    suite, rules, task = project.config.eval_suite, project.config.gate, plan.task
    with Registry.open(project.registry_path) as registry:
        failed: list[str] = []
        for c in plan.shortlist if suite.tasks else []:
            result = run_suite(
                suite,
                c.ref,
                connection,
                project_dir=project.root,
                registry=registry,
                progress=progress(c) if progress else None,
            )
            failed += [f"{c.ref}: {t.task}: {t.error}" for t in result.failed]
            c.headline, c.eval_run_id = _headline(result, task) if task is not None else (None, None)
        metric = task.headline_metric if task is not None else None
        higher = rules.higher_is_better(metric) if metric else True
        chosen, runner_up, test, tie = decide(plan.shortlist, higher, rules.alpha, registry)
        outcome = SelectionResult(
            plan.scope,
            plan.candidates,
            plan.shortlist,
            chosen,
            task.name if task is not None else None,
            metric,
            higher,
            runner_up,
            test,
            tie,
            failed_tasks=failed,
        )
        outcome.reason = _reason(outcome)
        registry.mark_selected(chosen.ref, plan.scope, reason=outcome.reason, details=outcome.details())
    return outcome


def select(
    project: Any,
    connection: Any,
    *,
    sweep_id: str | None = None,
    run_id: str | None = None,
    shortlist: int = DEFAULT_SHORTLIST,
    task: str | None = None,
    progress: Any = None,
) -> SelectionResult:
    """Choose and mark the candidate of a sweep (`sweep_id`) or a run (`run_id`); default the latest."""
    plan = plan_selection(project, sweep_id=sweep_id, run_id=run_id, shortlist=shortlist, task=task)
    return run_selection(project, plan, connection, progress)
