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
   not a promotion: `chief promote` and its gate still decide what serves. With a tracker
   (`--track`), each shortlisted version's suite results join its tracker run and the choice is
   tagged on the chosen one's.

An RL project has no validation NLL, and its train loss says nothing about whether it learned:
there every candidate's reward on the held-out prompts (`data.val`; greedy answers graded by the
project's `[rl] grader`, `reward_probe.HeldOutReward`) is both the shortlist and, unless `--task`
names a suite task, the decision, with McNemar on the same prompts against the runner-up. Without
held-out prompts the final train reward the run logged (mean of the last steps) shortlists, and
the suite task decides as above.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypedDict

from tinker_chief.connection import Connection
from tinker_chief.errors import TrainingError
from tinker_chief.evals.runner import ProgressSink, SuiteRunResult, TaskBudget, run_suite
from tinker_chief.evals.suite import EvalSuite, EvalTask
from tinker_chief.paths import ProjectPaths
from tinker_chief.registry import PairedTest, Registry, SampleOutcome
from tinker_chief.registry.stats import paired_on_samples
from tinker_chief.spend.billing import note_eval_session
from tinker_chief.tracking.contract import RunLink
from tinker_chief.tracking.mirror import Tracking
from tinker_chief.training.data import Prepared
from tinker_chief.training.from_project import spec_from_project
from tinker_chief.training.runlog import RunLog
from tinker_chief.training.session import prepare
from tinker_chief.training.spec import TrainSpec, stored_spec
from tinker_chief.workflows.reward_probe import HeldOutReward
from tinker_chief.workflows.sweeping import Sweep, load_sweep, run_results, sweep_dirs, tail_mean
from tinker_chief.workspace import Workspace

DEFAULT_SHORTLIST = 3
HELDOUT = ("heldout", "reward")  # the (task, metric) an RL selection by held-out reward is named by


@dataclass
class Candidate:
    """A registered checkpoint and what the cheap layer knows about it."""

    ref: str
    label: str  # sweep point name, or "step N"
    run_id: str
    step: int
    lora_rank: int
    learning_rate: float
    # Logged at this step (the final train loss where there is no validation data).
    val_nll: float | None
    headline: float | None = None  # the selection task's headline metric, for the shortlist
    eval_run_id: int | None = None
    train_reward: float | None = None  # RL: mean train/reward of the last steps up to this one
    heldout_reward: float | None = None  # RL: mean reward of greedy answers to the held-out prompts
    heldout_samples: list[SampleOutcome] | None = None  # per held-out prompt, for the paired test

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
    test: PairedTest | None = None  # the leader vs the runner-up
    tie: bool = False
    reason: str = ""
    failed_tasks: list[str] = field(default_factory=list)
    rl: bool = False
    heldout: HeldOutSummary | None = None  # RL: how each candidate's held-out reward was measured
    tracker: RunLink | None = None  # the chosen version's tracker run, tagged with the choice

    def details(self) -> dict[str, object]:
        return {
            "task": self.task,
            "metric": self.metric,
            "tie": self.tie,
            "runner_up": self.runner_up.ref if self.runner_up else None,
            "test": self.test.to_dict() if self.test is not None else None,
            "shortlist": [
                {"ref": c.ref, "label": c.label, **self._cheap(c), "headline": c.headline}
                for c in self.shortlist
            ],
            **({"heldout": self.heldout} if self.heldout is not None else {}),
        }

    def _cheap(self, c: Candidate) -> dict[str, float | None]:
        """What the cheap layer knew of `c`: its rewards (RL), else its validation NLL."""
        if self.rl:
            return {"train_reward": c.train_reward, "heldout_reward": c.heldout_reward}
        return {"val_nll": c.val_nll}


class HeldOutSummary(TypedDict):
    """What an RL selection records about the held-out reward it measured."""

    prompts: int
    grader: str
    answers: str  # how they were sampled: "greedy"
    rewards: dict[str, float | None]  # each candidate's (by registry ref) mean reward


# A candidate's suite progress display (`chief select`'s progress bars).
SuiteProgress = Callable[["Candidate"], ProgressSink]


# ----------------------------------------------------------------------------- candidates


def _spec_of(run_dir: Path) -> TrainSpec:
    return stored_spec(RunLog(run_dir).spec_json(), run_dir)


def sweep_candidates(project_dir: Path, sweep: Sweep, rl: bool = False) -> list[Candidate]:
    """Each finished point's last checkpoint (the run's candidate); `rl`: with its final reward,
    and no NLL (an RL run has no validation NLL, and its train loss does not rank anything)."""
    out = []
    for p in sweep.points:
        if (
            p.status == "finished"
            and p.candidate
            and p.run_id
            and not p.candidate.startswith("tinker://")
        ):
            out.append(
                Candidate(
                    p.candidate,
                    p.name,
                    p.run_id,
                    p.steps_done,
                    p.lora_rank,
                    p.learning_rate,
                    None if rl else p.final_loss if p.final_val_nll is None else p.final_val_nll,
                    train_reward=p.final_reward if rl else None,
                )
            )
    return out


def run_candidates(project_dir: Path, run_id: str, rl: bool = False) -> list[Candidate]:
    """Each registered checkpoint of the run, with the validation NLL logged at its step (`rl`: the
    mean train reward of the last steps up to it instead)."""
    log = RunLog(ProjectPaths(project_dir).runs / run_id)
    if not log.exists():
        raise TrainingError(f"no training run {run_id!r} under {ProjectPaths(project_dir).runs}")
    run_dir = log.dir
    spec = _spec_of(run_dir)
    nll_at = {
        r["step"]: r["val/nll"] for r in log.metrics() if isinstance(r.get("val/nll"), (int, float))
    }
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
    if rl:
        rows = [r for r in log.metrics() if isinstance(r.get("train/reward"), (int, float))]
        for c in out:
            c.val_nll = None
            c.train_reward = tail_mean([r["train/reward"] for r in rows if r["step"] <= c.step])
    elif out and all(c.val_nll is None for c in out):  # no validation NLL at any checkpoint step
        out[-1].val_nll = run_results(run_dir).loss  # its final train loss, the one number there is
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
    return best_first(candidates, lambda c: c.val_nll, higher_is_better=False)[:size]


def best_first(
    candidates: Sequence[Candidate],
    value: Callable[[Candidate], float | None],
    *,
    higher_is_better: bool,
) -> list[Candidate]:
    """Candidates by `value`, best first (cheaper first among equals); those without one come
    after, the most trained first."""
    sign = -1.0 if higher_is_better else 1.0
    valued = sorted(
        (c for c in candidates if value(c) is not None),
        key=lambda c: (sign * (value(c) or 0.0), c.cost),
    )
    rest = sorted((c for c in candidates if value(c) is None), key=lambda c: -c.step)
    return valued + rest


# ----------------------------------------------------------------------------- selection


def selection_task(suite: EvalSuite, name: str | None) -> EvalTask | None:
    """The task whose headline metric names the best: `name`, else the first product task, else
    the first (None: an empty suite)."""
    if name is not None:
        try:
            return suite.task(name)
        except KeyError:
            raise TrainingError(
                f"--task: suite `{suite.name}` has no task {name!r}; it has: "
                f"{', '.join(t.name for t in suite.tasks) or 'none'}"
            ) from None
    product = [t for t in suite.tasks if t.layer == "product"]
    return next(iter(product or suite.tasks), None)


def _headline(result: SuiteRunResult, task: EvalTask) -> tuple[float | None, int | None]:
    for outcome in result.tasks:
        if outcome.task == task.name and outcome.error is None:
            value = outcome.metrics.get(task.headline_metric, {}).get("value")
            return (float(value) if isinstance(value, (int, float)) else None), outcome.run_id
    return None, None


def decide(
    shortlist: list[Candidate],
    higher_is_better: bool,
    alpha: float,
    registry: Registry,
    samples_of: Callable[[Candidate], list[SampleOutcome] | None] | None = None,
) -> tuple[Candidate, Candidate | None, PairedTest | None, bool]:
    """(chosen, runner-up, paired test, tie) from the shortlist's headline values; the paired test
    is on `samples_of` each (default: the samples of its eval run in the registry)."""
    scored = [c for c in shortlist if c.headline is not None]
    if not scored:
        return shortlist[0], (shortlist[1] if len(shortlist) > 1 else None), None, False
    ranked = sorted(
        scored,
        key=lambda c: (
            (-c.headline if higher_is_better else c.headline) if c.headline is not None else 0.0,
            c.cost,
        ),
    )
    leader = ranked[0]
    if len(ranked) == 1:
        return leader, None, None, False
    runner_up = ranked[1]

    def recorded(c: Candidate) -> list[SampleOutcome] | None:
        return registry.samples(c.eval_run_id) if c.eval_run_id is not None else None

    ours, theirs = (samples_of or recorded)(leader), (samples_of or recorded)(runner_up)
    test = paired_on_samples(ours, theirs) if ours is not None and theirs is not None else None
    tie = test is None or not test.significant(alpha)
    if tie and runner_up.cost < leader.cost:
        return runner_up, leader, test, True
    return leader, runner_up, test, tie


def _reason(result: SelectionResult) -> str:
    c = result.chosen
    if result.metric is None or c.headline is None:
        if c.train_reward is not None:
            return f"best final train reward ({c.train_reward:.4g}; no held-out prompts)"
        return (
            f"best validation NLL ({c.val_nll})" if c.val_nll is not None else "the only candidate"
        )
    text = f"{result.task}/{result.metric} {c.headline:.4g}"
    other = result.runner_up
    if other is None:
        return text
    versus = (
        f"vs {other.ref} {other.headline:.4g}" if other.headline is not None else f"vs {other.ref}"
    )
    p = (
        f", {result.test.method} p={result.test.p_value:.3g}"
        if result.test is not None
        else ", no shared samples"
    )
    if result.tie and c.cost < other.cost:
        return (
            f"{text} {versus}: no significant difference{p}; the tie goes to the cheaper model "
            f"(rank {c.lora_rank}, {c.step} steps)"
        )
    if result.tie and c.headline == other.headline:
        cheap = "held-out reward" if result.rl else "validation NLL"
        same = f"{text} {versus}: no significant difference{p}"
        return f"{same}; no cheaper, so the better {cheap} decides"
    if result.tie:
        return f"{text} {versus}: ahead, but not significantly{p}; the runner-up is no cheaper"
    return f"{text} {versus}: significantly better{p}"


@dataclass
class SelectionPlan:
    """What `chief select` will evaluate, decided before any backend is reached."""

    scope: str
    candidates: list[Candidate]
    shortlist: list[Candidate]
    # The suite task whose headline decides (None: an empty suite, or RL by held-out reward).
    task: EvalTask | None
    rl: bool = False
    heldout: Prepared | None = None  # RL with held-out prompts: the data they are read from
    size: int = DEFAULT_SHORTLIST

    @property
    def by_heldout_reward(self) -> bool:
        """The held-out reward decides: an RL project with held-out prompts and no `--task`."""
        return self.heldout is not None and self.task is None


def plan_selection(
    project: Workspace,
    *,
    sweep_id: str | None = None,
    run_id: str | None = None,
    shortlist: int = DEFAULT_SHORTLIST,
    task: str | None = None,
) -> SelectionPlan:
    """The scope (default the latest run's sweep, or the latest run), its candidates and the
    shortlist by the cheap layer; every bad input is a one-line `TrainingError` here, before
    connecting."""
    if sweep_id is not None and run_id is not None:
        raise TrainingError("give one of --sweep ID or --run ID, not both")
    if shortlist < 1:
        raise TrainingError(f"--shortlist: expected a positive number, got {shortlist}")
    if sweep_id is None and run_id is None:
        sweep_id, run_id = default_scope(project.root)
    rl = project.config.recipe == "rl"
    if sweep_id is not None:
        sweep = load_sweep(project.root, sweep_id)
        scope, candidates = f"sweep:{sweep.sweep_id}", sweep_candidates(project.root, sweep, rl)
    else:
        assert run_id is not None
        scope, candidates = f"run:{run_id}", run_candidates(project.root, run_id, rl)
    if not candidates:
        raise TrainingError(f"{scope}: no finished, registered checkpoint to select from")
    if not rl:
        chosen_task = selection_task(project.config.eval_suite, task)
        ordered = sorted(candidates, key=lambda c: (c.val_nll is None, c.val_nll or 0.0))
        by_nll = shortlist_by_nll(candidates, shortlist)
        return SelectionPlan(scope, ordered, by_nll, chosen_task, size=shortlist)
    prepared = prepare(spec_from_project(project), project.root)  # a data error is one line, here
    heldout = prepared if prepared.val_problems else None
    decides_by_task = task is not None or heldout is None
    chosen_task = selection_task(project.config.eval_suite, task) if decides_by_task else None
    # Ordered by the logged train reward until the held-out reward is measured (`run_selection`).
    ordered = best_first(candidates, lambda c: c.train_reward, higher_is_better=True)
    return SelectionPlan(scope, ordered, ordered[:shortlist], chosen_task, True, heldout, shortlist)


def measure_heldout(
    plan: SelectionPlan, connection: Connection, registry: Registry
) -> HeldOutSummary:
    """Every candidate's held-out reward (greedy answers, the project's grader); reorders the plan's
    candidates and shortlist by it. Returns what the selection records about it."""
    assert plan.heldout is not None  # asked only of a plan with held-out prompts
    measure = HeldOutReward(plan.heldout, connection)
    for c in plan.candidates:
        rewards = measure(registry.get_model(c.ref).tinker_path)
        c.heldout_reward = sum(rewards) / max(1, len(rewards))
        c.heldout_samples = [SampleOutcome(str(i), r, r >= 1.0) for i, r in enumerate(rewards)]
    plan.candidates = best_first(plan.candidates, lambda c: c.heldout_reward, higher_is_better=True)
    plan.shortlist = plan.candidates[: plan.size]
    return {
        "prompts": len(measure.problems),
        "grader": measure.grader,
        "answers": "greedy",
        "rewards": {c.ref: c.heldout_reward for c in plan.candidates},
    }


class SelectionBudget(TaskBudget, Protocol):
    """The budget a selection's suites share (`spend.budget.EvalGuard`): asked before each task
    of each candidate; `stopped` is the error a selection it stopped raises."""

    def stopped(self, where: str, again: str) -> Exception: ...


def run_selection(
    project: Workspace,
    plan: SelectionPlan,
    connection: Connection | None = None,
    progress: SuiteProgress | None = None,
    *,
    backend: str | None = None,
    base_url: str | None = None,
    tracking: Tracking | None = None,
    budget: SelectionBudget | None = None,
) -> SelectionResult:
    """The full suite on the shortlist (recorded), the decision, and its mark in the registry; on
    `connection`, else on the project's backend (`backend`/`base_url` in its precedence).
    `tracking`: the suite results and the choice mirrored into an experiment tracker. When
    `budget` stops a task, the selection raises its error: the finished tasks stay recorded and
    nothing is chosen."""
    with project.connected(connection, backend=backend, base_url=base_url) as connected:
        return _run_selection(project, plan, connected, progress, tracking, budget)


def _suite_on(
    project: Workspace,
    candidate: Candidate,
    connection: Connection,
    registry: Registry,
    progress: SuiteProgress | None,
    budget: TaskBudget | None,
) -> SuiteRunResult:
    """The full suite on one candidate, in an SDK session of its own that is attributed to the
    eval runs it records, so `chief cost` sets the bill beside chief's count."""
    scoped = connection.scoped({"chief_scope": f"select:{candidate.ref}"})
    try:
        result = run_suite(
            project.config.eval_suite,
            candidate.ref,
            scoped,
            project_dir=project.root,
            registry=registry,
            progress=progress(candidate) if progress else None,
            budget=budget,
            renderer=project.renderer_choice,
        )
        note_eval_session(registry, scoped, result, command="select")
        return result
    finally:
        connection.close_run_client(scoped.service_client())


def _run_selection(
    project: Workspace,
    plan: SelectionPlan,
    connection: Connection,
    progress: SuiteProgress | None,
    tracking: Tracking | None,
    budget: SelectionBudget | None = None,
) -> SelectionResult:
    suite, rules, task = project.config.eval_suite, project.config.gate, plan.task
    with project.open_registry() as registry:
        heldout = measure_heldout(plan, connection, registry) if plan.heldout is not None else None
        failed: list[str] = []
        for number, c in enumerate(plan.shortlist if suite.tasks else [], 1):
            result = _suite_on(project, c, connection, registry, progress, budget)
            if budget is not None and result.stopped:
                where = f"stopped at candidate {number} of {len(plan.shortlist)} ({c.ref})"
                raise budget.stopped(f"{where}, nothing chosen", "run `chief select` again")
            failed += [f"{c.ref}: {t.task}: {t.error}" for t in result.failed]
            if tracking is not None:
                tracking.log_evals(registry, c.ref, result.suite_version)
            c.headline, c.eval_run_id = (
                _headline(result, task) if task is not None else (None, None)
            )
        task_name, metric = (task.name, task.headline_metric) if task is not None else (None, None)
        higher = rules.higher_is_better(metric) if metric else True
        samples_of = None
        if plan.by_heldout_reward:
            (task_name, metric), higher = HELDOUT, True
            for c in plan.shortlist:
                c.headline = c.heldout_reward
            samples_of = lambda c: c.heldout_samples  # noqa: E731
        chosen, runner_up, test, tie = decide(
            plan.shortlist, higher, rules.alpha, registry, samples_of
        )
        outcome = SelectionResult(
            plan.scope,
            plan.candidates,
            plan.shortlist,
            chosen,
            task_name,
            metric,
            higher,
            runner_up,
            test,
            tie,
            failed_tasks=failed,
            rl=plan.rl,
            heldout=heldout,
        )
        outcome.reason = _reason(outcome)
        registry.mark_selected(
            chosen.ref, plan.scope, reason=outcome.reason, details=outcome.details()
        )
        if tracking is not None:
            outcome.tracker = tracking.log_selection(
                registry, chosen.ref, plan.scope, outcome.reason
            )
    return outcome


def select(
    project: Workspace,
    connection: Connection | None = None,
    *,
    sweep_id: str | None = None,
    run_id: str | None = None,
    shortlist: int = DEFAULT_SHORTLIST,
    task: str | None = None,
    progress: SuiteProgress | None = None,
) -> SelectionResult:
    """Choose and mark the candidate of a sweep (`sweep_id`) or a run (`run_id`); default the
    latest. On `connection`, else on the project's own backend."""
    plan = plan_selection(project, sweep_id=sweep_id, run_id=run_id, shortlist=shortlist, task=task)
    return run_selection(project, plan, connection, progress)
