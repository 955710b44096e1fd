"""Budgets: `[budget] max_usd` / `max_tokens` (and `--max-usd`) against what the project spent.

Spent to date is chief's own count, recorded in the registry (each training run's whole count,
plus every eval run: `Registry.spent()`), priced at the project's dated price table
(`[estimates] prices_file`, else the shipped one): what the work costs, or would cost, on
Tinker's cloud; tokens are training, prefill and sampled tokens together. Every budget stop is
`BudgetExceeded`, exit code 6, with one line: what was spent, the budget, how to raise it and
how to go on.

- Up front (`refuse_over`): a command whose estimate exceeds what remains does not start.
- Training (`BudgetGuard`): `chief train`'s run, or every point of a `chief sweep` together, asks
  after each step; when the next step (and an inline eval due) of every running run would cross
  the budget, each saves a checkpoint and stops (status `budget`), a sweep starts no more points,
  and `--resume` goes on once the budget is raised.
- Evals (`EvalGuard`): `chief eval` and `chief select` ask before each suite task (of each
  candidate); a task whose estimate would cross is not started, the finished ones stay recorded.

A dollar budget needs a price for every base model it counts: without one the command says so
and suggests `max_tokens`.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from tinker_chief.errors import ChiefError, ConfigurationError
from tinker_chief.exit_codes import ExitCode
from tinker_chief.paths import ProjectPaths
from tinker_chief.runfiles import RunFiles, run_dirs

if TYPE_CHECKING:
    from tinker_chief.planning import Project
    from tinker_chief.planning.planner import Estimates
    from tinker_chief.registry import Registry, Usage

TOKEN_KINDS = ("train", "prefill", "sample")
RAISE_HINT = "raise [budget] max_usd / max_tokens in chief.toml (or pass --max-usd)"


class BudgetExceeded(ChiefError):
    """A command would cross, or a run reached, the project's budget (exit code 6)."""

    exit_code = ExitCode.BUDGET_STOPPED


@dataclass(frozen=True)
class Tokens:
    """Tokens by how Tinker bills them; `usd` at the price table (None: some have no price)."""

    train: int = 0
    prefill: int = 0
    sample: int = 0
    usd: float | None = 0.0

    @property
    def total(self) -> int:
        return self.train + self.prefill + self.sample

    def __add__(self, other: Tokens) -> Tokens:
        usd = None if self.usd is None or other.usd is None else self.usd + other.usd
        return Tokens(
            self.train + other.train, self.prefill + other.prefill, self.sample + other.sample, usd
        )

    def scaled(self, factor: float) -> Tokens:
        usd = None if self.usd is None else self.usd * factor
        train, prefill, sample = (math.ceil(getattr(self, k) * factor) for k in TOKEN_KINDS)
        return Tokens(train, prefill, sample, usd)

    def text(self) -> str:
        return f"{self.total:,} tokens" + ("" if self.usd is None else f" (${self.usd:,.4f})")


def parse_max_usd(value: str | None) -> float | None:
    """`--max-usd`: a non-negative number of US dollars, or one line saying what was expected."""
    if value is None:
        return None
    try:
        amount = float(value)
    except ValueError:
        amount = math.nan
    if not math.isfinite(amount) or amount < 0:
        raise ConfigurationError(
            f"--max-usd: expected a non-negative number of US dollars, got {value!r}"
        )
    return amount


@dataclass(frozen=True)
class Budget:
    max_usd: float | None
    max_tokens: int | None

    @property
    def set(self) -> bool:
        return self.max_usd is not None or self.max_tokens is not None

    @classmethod
    def of(cls, project: Project, max_usd_flag: str | None = None) -> Budget:
        """The project's `[budget]`, with `--max-usd` replacing its `max_usd`."""
        section = project.config.budget
        flag = parse_max_usd(max_usd_flag)
        return cls(flag if flag is not None else section.max_usd, section.max_tokens)

    def describe(self) -> str:
        parts = [f"max_usd = ${self.max_usd:,.4f}"] if self.max_usd is not None else []
        parts += [f"max_tokens = {self.max_tokens:,}"] if self.max_tokens is not None else []
        return " and ".join(parts)

    def crossed(self, total: Tokens) -> str | None:
        """What `total` exceeds of this budget, in words; None when within it."""
        if self.max_tokens is not None and total.total > self.max_tokens:
            return f"max_tokens = {self.max_tokens:,}"
        if self.max_usd is not None and total.usd is not None and total.usd > self.max_usd:
            return f"max_usd = ${self.max_usd:,.4f}"
        return None

    def remaining(self, spent: Tokens) -> str:
        parts = []
        if self.max_tokens is not None:
            parts.append(f"{max(0, self.max_tokens - spent.total):,} tokens")
        if self.max_usd is not None and spent.usd is not None:
            parts.append(f"${max(0.0, self.max_usd - spent.usd):,.4f}")
        return " / ".join(parts)


class Pricer:
    """Tokens to dollars at the project's dated price table, per base model."""

    def __init__(self, prices_file: Path | None) -> None:
        self.prices_file = prices_file

    def price(self, base_model: str) -> dict[str, float] | None:
        """`base_model`'s rates in $/M tokens per token kind (`TOKEN_KINDS`; 0 for a kind the
        table leaves unpriced), or None when the table has no price for it."""
        from tinker_chief.planning.estimates import price_of

        found = price_of(base_model, self.prices_file)
        if found is None:
            return None
        rates = {kind: found.get(kind) for kind in TOKEN_KINDS}
        return {kind: float(r) if isinstance(r, (int, float)) else 0.0 for kind, r in rates.items()}

    def tokens(self, base_model: str, train: int, prefill: int, sample: int) -> Tokens:
        price = self.price(base_model)
        usd = None
        if price is not None:
            usd = sum(
                count * price[kind] for kind, count in zip(TOKEN_KINDS, (train, prefill, sample))
            )
            usd /= 1e6
        return Tokens(train, prefill, sample, usd)

    def usage(self, base_model: str, usage: Usage | None) -> Tokens:
        """A registry usage row (a run's, an eval run's) priced; None: nothing."""
        if usage is None:
            return Tokens()
        counts = (usage.train_tokens or 0, usage.prefill_tokens or 0, usage.sample_tokens or 0)
        return self.tokens(base_model, *counts)

    def table(self) -> str:
        """The price table's name, date and source (shown wherever dollars are)."""
        from tinker_chief.files import read_toml
        from tinker_chief.planning.estimates import PRICES_FILE

        path = self.prices_file or PRICES_FILE
        table = read_toml(path)
        as_of, source = table.get("as_of", "undated"), table.get("source", "no source given")
        return f"{path.name} (as of {as_of}; {source})"


def pricer_of(project: Project) -> Pricer:
    prices = project.config.estimates.prices_file
    return Pricer(project.path(prices) if prices else None)


def require_prices(budget: Budget, pricer: Pricer, base_models: list[str]) -> None:
    """A dollar budget needs a price for every base model the work runs on."""
    if budget.max_usd is None:
        return
    for model in dict.fromkeys(base_models):
        if pricer.price(model) is None:
            raise ConfigurationError(
                f"a dollar budget (max_usd) needs a price for {model}, and {pricer.table()} has "
                "none: add one ([estimates] prices_file) or set [budget] max_tokens instead"
            )


def spent(registry: Registry, pricer: Pricer, exclude_runs: Iterable[str] = ()) -> Tokens:
    """The project's spend to date from the registry (without `exclude_runs`, runs resuming)."""
    total = Tokens()
    for base, usage in registry.spent(exclude_runs=exclude_runs).items():
        total = total + pricer.usage(base, usage)
    return total


def refuse_over(budget: Budget, spent_so_far: Tokens, estimate: Tokens, command: str) -> None:
    """Refuse `command` up front when spent + its estimate crosses the budget (one line)."""
    crossed = budget.crossed(spent_so_far + estimate)
    if crossed is None:
        return
    raise BudgetExceeded(
        f"budget: {command} would use ~{estimate.text()}, over {crossed}: spent so far "
        f"{spent_so_far.text()}, remaining {budget.remaining(spent_so_far)}; {RAISE_HINT}"
    )


def training_estimate(project: Project, pricer: Pricer, fraction: float = 1.0) -> Tokens:
    """The plan's tokens for one training run of the project (`fraction` of it, for a resume)."""
    work = plan_estimates(project).work
    counts = (work.train_tokens, work.prefill_tokens, work.sample_tokens)
    return pricer.tokens(project.config.base_model, *counts).scaled(fraction)


def plan_estimates(project: Project) -> Estimates:
    """The planner's estimates for the project as it is now (`chief plan`'s numbers)."""
    from tinker_chief.planning import make_plan

    return make_plan(project).estimates


@dataclass
class Counter:
    """What a budget guard counts with: the budget, the project's spend before the command, and
    the price table at the base model's prices."""

    budget: Budget
    spent_before: Tokens
    pricer: Pricer
    base_model: str
    reason: str | None = field(default=None, init=False)  # why the work stops; None: within it

    def _tokens(self, usage: Mapping[str, float]) -> Tokens:
        """Usage in metrics.jsonl's `*/tokens` keys, priced."""
        counts = (int(usage.get(f"{kind}/tokens", 0)) for kind in TOKEN_KINDS)
        return self.pricer.tokens(self.base_model, *counts)


@dataclass
class BudgetGuard(Counter):
    """The budget concurrent training runs share: `chief train`'s one run, or every point of a
    sweep. Each run asks after every step (`for_run(name).check`, the training loop's
    `SpendGuard`) with its usage so far and what it will use before it asks again (the next
    step, an inline eval due). The guard projects the project's spend: spent before, plus every
    run so far, plus the upcoming work of every running run. Once that would cross the budget it
    answers every running run with the same reason at its next step (each saves a checkpoint and
    stops) and lets no new run `start`."""

    # Each run's usage so far (a resumed one's as recorded), and what each running run uses
    # before it asks again.
    runs: dict[str, Tokens] = field(default_factory=dict)
    upcoming: dict[str, Tokens] = field(default_factory=dict, init=False)
    running: set[str] = field(default_factory=set, init=False)
    crossed: str | None = field(default=None, init=False)  # e.g. "max_tokens = 3,072"
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def start(self, name: str) -> bool:
        """Whether run `name` may start: not once the budget stopped the runs, nor when its first
        step (guessed as the largest upcoming work of the others) would cross it."""
        with self._lock:
            if self.reason is None:
                self._project(name, max(self.upcoming.values(), key=_total, default=Tokens()))
            if self.reason is None:
                self.running.add(name)
            return self.reason is None

    def check(
        self, name: str, run_usage: Mapping[str, float], upcoming: Mapping[str, float]
    ) -> str | None:
        """Why run `name` stops now, or None: its usage so far and its `upcoming` work, in
        metrics.jsonl's `*/tokens` keys."""
        with self._lock:
            self.runs[name] = self._tokens(run_usage)
            self.upcoming[name] = self._tokens(upcoming)
            self.running.add(name)
            if self.reason is None:
                self._project(name, self.upcoming[name])
            return self.reason

    def ended(self, name: str) -> None:
        """Run `name` stopped (finished, failed or stopped): nothing more of it is upcoming."""
        with self._lock:
            self.running.discard(name)
            self.upcoming.pop(name, None)

    def for_run(self, name: str) -> RunBudget:
        return RunBudget(self, name)

    def _project(self, name: str, guess: Tokens) -> None:
        """Sets `reason` when the spend so far plus the upcoming work of every running run (and
        of `name`; `guess` for a run that has not said yet) would cross the budget."""
        running = self.running | {name}
        so_far = sum(self.runs.values(), self.spent_before)
        projected = so_far + sum((self.upcoming.get(run, guess) for run in running), Tokens())
        crossed = self.budget.crossed(projected)
        if crossed is None:
            return
        what = (
            "the next step"
            if len(running) == 1
            else f"the next step of {len(running)} running runs"
        )
        self.crossed = crossed
        self.reason = (
            f"budget: {what} would take the project to ~{projected.text()}, "
            f"over {crossed} (spent {so_far.text()})"
        )


@dataclass(frozen=True)
class RunBudget:
    """One run's view of a `BudgetGuard`: what the training loop asks after each step."""

    guard: BudgetGuard
    name: str

    def check(self, run_usage: Mapping[str, float], upcoming: Mapping[str, float]) -> str | None:
        return self.guard.check(self.name, run_usage, upcoming)


def _total(tokens: Tokens) -> int:
    return tokens.total


def _spent_now(project: Project, pricer: Pricer, exclude_runs: Iterable[str] = ()) -> Tokens:
    from tinker_chief.registry import Registry

    with Registry.open(project.registry_path) as registry:
        return spent(registry, pricer, exclude_runs)


def budget_of(project: Project, max_usd: str | None) -> Budget | None:
    """The budget a command runs under (`--max-usd` replacing `[budget] max_usd`); None: none."""
    budget = Budget.of(project, max_usd)
    return budget if budget.set else None


def training_guard(project: Project, max_usd: str | None, resume: bool) -> RunBudget | None:
    """The budget a `chief train` runs under (None: no budget); refuses a run (or, with `resume`,
    the rest of the latest one) whose estimate would cross it."""
    budget = budget_of(project, max_usd)
    if budget is None:
        return None
    run_id, fraction = None, 1.0
    latest = run_dirs(ProjectPaths(project.root).runs)
    if resume and latest:
        log = RunFiles(latest[-1])
        run_id, rows, total = log.run_id, log.checkpoint_rows(), log.status().get("total_steps")
        step = rows[-1].get("step") if rows else 0
        if isinstance(step, int) and isinstance(total, int) and total > 0:
            fraction = max(0.0, 1 - step / total)
    pricer = pricer_of(project)
    require_prices(budget, pricer, [project.config.base_model])
    estimate = training_estimate(project, pricer, fraction)
    refuse_over(budget, _spent_now(project, pricer), estimate, "chief train")
    before = _spent_now(project, pricer, [run_id] if run_id else [])
    return BudgetGuard(budget, before, pricer, project.config.base_model).for_run(run_id or "run")


def run_stopped(steps_done: int, total_steps: int, reason: str | None) -> BudgetExceeded:
    """The error a `chief train` the budget stopped exits with, saying how to go on."""
    return BudgetExceeded(
        f"{reason}; stopped at step {steps_done}/{total_steps} with a checkpoint: {RAISE_HINT}, "
        "then continue with `chief train --resume`"
    )


class SweepRun(Protocol):
    """A sweep point as its budget sees it (`workflows.sweeping.SweepPoint`)."""

    name: str
    run_id: str | None
    status: str
    steps_done: int
    total_steps: int | None


def sweep_guard(
    project: Project, max_usd: str | None, points: Sequence[SweepRun]
) -> BudgetGuard | None:
    """The budget a sweep's points share (None: no budget). Refuses a sweep whose estimate, one
    plan's run per point still to train (the rest of it for a point stopped mid-way), would cross
    it; the points' runs about to resume count from their recorded usage on."""
    budget = budget_of(project, max_usd)
    if budget is None:
        return None
    pricer = pricer_of(project)
    require_prices(budget, pricer, [project.config.base_model])
    todo = [p for p in points if p.status != "finished"]
    one_run, estimate = training_estimate(project, pricer), Tokens()
    for p in todo:
        done = p.steps_done / p.total_steps if p.total_steps else 0.0
        estimate = estimate + one_run.scaled(max(0.0, 1 - done))
    refuse_over(budget, _spent_now(project, pricer), estimate, f"chief sweep ({len(todo)} runs)")
    from tinker_chief.registry import Registry

    resumed = {p.name: p.run_id for p in todo if p.run_id}
    with Registry.open(project.registry_path) as registry:
        before = spent(registry, pricer, resumed.values())
        base = project.config.base_model
        runs = {name: pricer.usage(base, registry.run_usage(run)) for name, run in resumed.items()}
    return BudgetGuard(budget, before, pricer, base, runs)


def sweep_stopped(
    project: Project, guard: BudgetGuard, stopped: int, not_started: int
) -> BudgetExceeded:
    """The error a sweep the budget stopped exits with: spent, the budget, how to go on."""
    spent_now = _spent_now(project, guard.pricer)
    return BudgetExceeded(
        f"budget: the sweep stopped before the project crossed {guard.crossed}: spent "
        f"{spent_now.text()}; {stopped} point(s) stopped at a checkpoint, {not_started} not "
        f"started: {RAISE_HINT}, then continue with `chief sweep --resume`"
    )


@dataclass
class EvalGuard(Counter):
    """Asked before each suite task of `chief eval` and `chief select` (every candidate's, with
    one guard: `evals.runner.TaskBudget`): a task whose estimate (the plan's; without one, the
    largest task run so far) would take the project past the budget is not started, counting
    what the command's tasks used so far. Once it stopped one task it stops every later one."""

    estimates: dict[str, Tokens] = field(default_factory=dict)  # the plan's, per task
    used: Tokens = field(default_factory=Tokens, init=False)  # by this command's tasks
    largest: Tokens = field(default_factory=Tokens, init=False)

    def check(self, task: str) -> str | None:
        if self.reason is None:
            upcoming = self.estimates.get(task, self.largest)
            so_far = self.spent_before + self.used
            crossed = self.budget.crossed(so_far + upcoming)
            if crossed is not None:
                self.reason = (
                    f"budget: the next task ({task}, ~{upcoming.text()}) would take the project to "
                    f"~{(so_far + upcoming).text()}, over {crossed} (spent {so_far.text()})"
                )
        return self.reason

    def add(self, tokens: Mapping[str, float]) -> None:
        """What a task this command ran used (`prefill/tokens`, `sample/tokens`)."""
        ran = self._tokens(tokens)
        self.used = self.used + ran
        self.largest = max(self.largest, ran, key=_total)

    def stopped(self, where: str, again: str) -> BudgetExceeded:
        """The error the command exits with: `where` it stopped, how to run it `again`."""
        return BudgetExceeded(
            f"{self.reason}; {where}, the finished tasks are recorded: {RAISE_HINT}, then {again} "
            "(finished tasks are reused)"
        )


def eval_guard(
    project: Project, max_usd: str | None, command: str, models: int = 1
) -> EvalGuard | None:
    """The budget `chief eval` (`models` = 1) or `chief select` (the suite on `models`
    candidates) runs under (None: no budget); refuses one whose estimate would cross it."""
    budget = budget_of(project, max_usd)
    if budget is None:
        return None
    pricer, base = pricer_of(project), project.config.base_model
    require_prices(budget, pricer, [base])
    evals = plan_estimates(project).eval_sampling
    tasks = evals.tasks if evals is not None else []
    estimates = {
        t.task: pricer.tokens(base, 0, t.prefill_tokens or 0, t.sample_tokens or 0)
        for t in tasks
        if t.prefill_tokens is not None or t.sample_tokens is not None
    }
    spent_before = _spent_now(project, pricer)
    refuse_over(budget, spent_before, sum(estimates.values(), Tokens()).scaled(models), command)
    return EvalGuard(budget, spent_before, pricer, base, estimates)
