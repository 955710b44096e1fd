"""`chief sweep` and `chief select`: parse, call `workflows.sweeping` / `workflows.selection`,
print.

`SweepDisplay` draws one live table row per run of the sweep: step/total, train loss, the latest
validation NLL (an RL sweep: the step's mean reward) and the run's status; the runs' threads
update it through one observer each.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import click
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from tinker_chief.cli.cost import max_usd_option
from tinker_chief.cli.options import (
    backend_options,
    json_option,
    print_json,
    project_option,
    track_option,
    tracker_warning,
)
from tinker_chief.exit_codes import ExitCode

if TYPE_CHECKING:  # imported lazily at run time so `chief --help` stays fast
    from tinker_chief.training import CheckpointRecord, TrainResult
    from tinker_chief.workflows.selection import Candidate, SelectionResult
    from tinker_chief.workflows.sweeping import Sweep, SweepPoint

Number = TypeVar("Number", int, float)


def _number_list(
    kind: type[Number], example: str
) -> Callable[[click.Context, click.Parameter, str | None], list[Number]]:
    """A click callback parsing "a,b,c" into numbers of `kind`, with a one-line error."""

    def parse(ctx: click.Context, param: click.Parameter, value: str | None) -> list[Number]:
        if not value:
            return []
        try:
            # An empty item ("1,,2") is a typo, not a number to skip.
            return [kind(item) for item in value.split(",")]
        except ValueError:
            what = "whole numbers" if kind is int else "numbers"
            raise click.BadParameter(
                f"expected comma-separated {what} like {example}, got {value!r}"
            ) from None

    return parse


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


class SweepDisplay:
    """A rich live table, one row per sweep point, fed by per-point observers from many threads."""

    def __init__(self, console: Console, sweep: Sweep, rl: bool = False) -> None:
        self.console, self.sweep, self.rl = console, sweep, rl
        self.rows: dict[str, dict[str, str]] = {
            p.name: {
                "run": p.run_id or "-",
                "step": f"{p.steps_done}/{p.total_steps or '?'}",
                "loss": "-",
                "score": _number(p.final_reward if rl else p.final_val_nll),
                "status": p.status,
            }
            for p in sweep.points
        }
        self.lock = threading.Lock()
        self.live = Live(console=console, refresh_per_second=4, get_renderable=self.table)

    def table(self) -> Table:
        table = Table(title=f"sweep {self.sweep.sweep_id}")
        score = "reward" if self.rl else "val NLL"
        for column in ("point", "LR", "rank", "batch", "run", "step", "loss", score, "status"):
            table.add_column(
                column, justify="left" if column in ("point", "run", "status") else "right"
            )
        with self.lock:
            for p in self.sweep.points:
                row = self.rows[p.name]
                table.add_row(
                    p.name,
                    f"{p.learning_rate:.3g}",
                    str(p.lora_rank),
                    str(p.batch_size),
                    row["run"],
                    row["step"],
                    row["loss"],
                    row["score"],
                    escape(p.status),
                )
        return table

    def set(self, name: str, **values: str) -> None:
        with self.lock:
            self.rows[name].update(values)

    def observer(self, point: SweepPoint) -> _PointRow:
        return _PointRow(self, point.name)


class _PointRow:
    """A `training.Observer` for one point: writes into its row of the display."""

    def __init__(self, display: SweepDisplay, name: str) -> None:
        self.display, self.name, self.total = display, name, 0

    def on_start(self, run_id: str, start_step: int, total_steps: int) -> None:
        self.total = total_steps
        self.display.set(self.name, run=run_id, step=f"{start_step}/{total_steps}")

    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        self.display.set(
            self.name,
            step=f"{step}/{self.total}",
            loss=f"{metrics.get('train/loss', float('nan')):.4f}",
        )
        if self.display.rl and "train/reward" in metrics:
            self.display.set(self.name, score=f"{metrics['train/reward']:.4f}")

    def on_eval(self, step: int, metrics: dict[str, float]) -> None:
        if not self.display.rl and "val/nll" in metrics:
            self.display.set(self.name, score=f"{metrics['val/nll']:.4f}")

    def on_checkpoint(self, record: CheckpointRecord) -> None: ...

    def on_end(self, result: TrainResult) -> None: ...


@click.command(name="sweep")
@project_option
@click.option(
    "--lr-multipliers",
    callback=_number_list(float, "0.25,0.5,1,2,4"),
    default=None,
    help="Multiples of the plan's learning rate [default: 0.25,0.5,1,2,4].",
)
@click.option(
    "--ranks",
    callback=_number_list(int, "8,32"),
    default=None,
    help="LoRA ranks [default: the plan's].",
)
@click.option(
    "--batch-sizes",
    callback=_number_list(int, "8,16"),
    default=None,
    help="Batch sizes [default: the plan's].",
)
@click.option(
    "--parallel",
    type=click.IntRange(min=1),
    default=None,
    help="Runs training at once [default: all of them].",
)
@backend_options
@click.option("--resume", is_flag=True, help="Continue the latest (or --sweep) interrupted sweep.")
@click.option("--sweep", "sweep_id", default=None, help="With --resume: the sweep to continue.")
@json_option
@max_usd_option
@track_option
def sweep_command(
    project_dir: Path,
    lr_multipliers: list[float],
    ranks: list[int],
    batch_sizes: list[int],
    parallel: int | None,
    backend: str | None,
    base_url: str | None,
    resume: bool,
    sweep_id: str | None,
    as_json: bool,
    max_usd: str | None,
    track: str | None,
) -> None:
    """Train a grid around the plan: learning rates x ranks (x batch sizes), concurrently.

    Each point is a normal `chief train` run on one backend (on the local engine the runs
    share one base model): inline evals, every checkpoint registered with its
    hyperparameters and the sweep's id. Ctrl-C stops every run at a checkpoint and
    exits 130; `chief sweep --resume` continues the sweep, skipping finished points. A
    budget ([budget], --max-usd) is checked after every step of every point: before
    crossing it, each running point saves a checkpoint, the others stay pending, and the
    sweep exits 6 (`--resume` once the budget is raised). A
    point that fails exits 4 once the others are done. The summary
    says where the best learning rate fell relative to the plan's and get_lr's, per rank,
    by the final validation NLL (an RL project: the final reward, higher is better).
    Next: `chief select` picks the sweep's candidate. With --track the sweep is one group
    in an experiment tracker (MLflow: a parent run with one child run per point).

    \b
    Examples:
      chief sweep
      chief sweep --lr-multipliers 0.5,1,2 --ranks 8,32
      chief sweep --resume --json
      chief sweep --track mlflow
    """
    from tinker_chief.spend.budget import sweep_guard, sweep_stopped
    from tinker_chief.tracking.mirror import tracking_for
    from tinker_chief.workflows.sweeping import (
        DEFAULT_LR_MULTIPLIERS,
        planned_points,
        resume_sweep,
        run_sweep,
        start_sweep,
    )
    from tinker_chief.workspace import Workspace

    if sweep_id is not None and not resume:
        raise click.UsageError("--sweep ID goes with --resume (a new sweep gets a new id)")
    if resume and (lr_multipliers or ranks or batch_sizes):
        raise click.UsageError(
            "--resume continues the sweep's own grid; drop --lr-multipliers/--ranks/--batch-sizes"
        )
    console = Console(stderr=as_json)  # --json keeps stdout for its one object
    project = Workspace.open(project_dir)
    tracking = tracking_for(project, track, tracker_warning)  # a missing tracker: one line, now
    multipliers = lr_multipliers or DEFAULT_LR_MULTIPLIERS
    sizes = {"ranks": ranks, "batch_sizes": batch_sizes}
    resumed = resume_sweep(project, sweep_id) if resume else None
    points = (
        resumed.points if resumed else planned_points(project, lr_multipliers=multipliers, **sizes)
    )
    guard = sweep_guard(project, max_usd, points)  # refuses points that would cross the budget
    sweep = resumed or start_sweep(project, lr_multipliers=multipliers, **sizes)
    console.print(
        escape(
            f"sweep {sweep.sweep_id}: {len(sweep.points)} runs around the plan's LR "
            f"{sweep.planned_lr:.3g}, rank {sweep.planned_rank}" + (" (resuming)" if resume else "")
        )
    )
    display = SweepDisplay(console, sweep, rl=project.config.recipe == "rl")
    with display.live:
        run_sweep(
            project,
            sweep,
            parallel=parallel,
            display=display.observer,
            backend=backend,
            base_url=base_url,
            tracking=tracking,
            guard=guard,
        )
    console.line()  # the live table leaves the cursor at its last line
    group = tracking.group_of(sweep.dir)
    if as_json:
        tracker = group.to_json() if group else None
        print_json({**sweep.to_json(), "file": str(sweep.path), "tracker": tracker})
    else:
        _print_sweep(console, sweep)
        if group is not None:
            console.print(escape(f"tracker: {group.describe()}"), soft_wrap=True)
    if guard is not None and sweep.status == "budget":
        statuses = [p.status for p in sweep.points]
        raise sweep_stopped(project, guard, statuses.count("budget"), statuses.count("pending"))
    code = sweep_exit_code(sweep)
    if code != ExitCode.OK:
        raise SystemExit(code)


def _print_sweep(console: Console, sweep: Sweep) -> None:
    from tinker_chief.workflows.sweeping import summarize

    for point in sweep.points:
        if point.error:
            console.print(f"[red]{escape(point.name)} failed[/red]: {escape(point.error)}")
    for line in summarize(sweep)["lines"]:
        console.print(escape(line))
    console.print(escape(f"{sweep.status}: {sweep.path}"))
    if sweep.status == "interrupted":
        console.print("[yellow]interrupted; continue with `chief sweep --resume`[/yellow]")
    elif sweep.status == "finished":
        console.print(escape(f"next: chief select --sweep {sweep.sweep_id}"))


def sweep_exit_code(sweep: Sweep) -> ExitCode:
    """A sweep's outcome as the exit-code table says: Ctrl-C (a point left unfinished) first,
    then the budget, then a point that errored, then one the recipe stopped (RL: no learning
    signal)."""
    statuses = {point.status for point in sweep.points}
    if "interrupted" in statuses:
        return ExitCode.INTERRUPTED
    if sweep.status == "budget":
        return ExitCode.BUDGET_STOPPED
    if statuses & {"pending", "running"}:
        return ExitCode.INTERRUPTED
    if "failed" in statuses:
        return ExitCode.TASKS_FAILED
    if "stopped" in statuses:
        return ExitCode.STOPPED
    return ExitCode.OK


@click.command(name="select")
@project_option
@click.option("--sweep", "sweep_id", default=None, help="Choose among this sweep's runs.")
@click.option("--run", "run_id", default=None, help="Choose among this training run's checkpoints.")
@click.option(
    "--shortlist",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Candidates (best validation NLL first; RL: best held-out reward) "
    "that get the full eval suite.",
)
@click.option(
    "--task",
    default=None,
    help="The suite task whose headline metric decides "
    "[default: the first product task; RL: the held-out reward].",
)
@backend_options
@json_option
@max_usd_option
@track_option
def select_command(
    project_dir: Path,
    sweep_id: str | None,
    run_id: str | None,
    shortlist: int,
    task: str | None,
    backend: str | None,
    base_url: str | None,
    as_json: bool,
    max_usd: str | None,
    track: str | None,
) -> None:
    """Choose the candidate of a sweep or a run: validation NLL first, the full suite on the
    shortlist.

    Without --sweep/--run: the latest run's sweep, or the latest run. The best by the
    headline metric wins, with a paired test against the runner-up; a tie (no significant
    difference) goes to the cheaper model (smaller rank, then fewer steps). The choice is
    marked in the registry as the candidate of the sweep or run; it is not promoted
    (`chief promote` and its gate decide that). Suite results are recorded as `chief eval` does;
    a suite task that fails on a candidate exits 4 after the choice is made. A budget
    ([budget], --max-usd) is checked before each suite task of each candidate: one that
    would cross it is not started, and the command exits 6 with nothing chosen.
    With --track the results join each shortlisted version's tracker run, and the choice is
    tagged on the chosen's.

    An RL project is chosen by reward, not NLL: each candidate's greedy answers to the
    held-out prompts ([data] val), graded by [rl] grader, shortlist and (without --task)
    decide, with McNemar on the same prompts against the runner-up.

    \b
    Examples:
      chief select
      chief select --sweep sweep-20261204-021500 --shortlist 2
      chief select --run run-20261204-021500 --json
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from tinker_chief.cli.eval import RichSuiteProgress
    from tinker_chief.tracking.mirror import tracking_for
    from tinker_chief.workflows.selection import plan_selection, run_selection
    from tinker_chief.workspace import Workspace

    if sweep_id and run_id:
        raise click.UsageError("give one of --sweep ID or --run ID, not both")
    console = Console(stderr=as_json)  # --json keeps stdout for its one object
    project = Workspace.open(project_dir)
    tracking = tracking_for(project, track, tracker_warning)
    plan = plan_selection(project, sweep_id=sweep_id, run_id=run_id, shortlist=shortlist, task=task)
    from tinker_chief.spend.budget import eval_guard

    evaluated = len(plan.shortlist)  # the full suite runs on the shortlist
    command = f"chief select (the suite on {evaluated} candidates)"
    budget = eval_guard(project, max_usd, command, evaluated)  # refuses one that would cross it
    if plan.heldout is not None:
        prompts, n = len(plan.heldout.val_problems), len(plan.candidates)
        console.print(escape(f"held-out reward of {n} candidate(s) on {prompts} prompts"))

    def progress(candidate: Candidate) -> RichSuiteProgress:
        bars.console.print(
            escape(f"suite {project.config.eval_suite.name} on {candidate.ref} ({candidate.label})")
        )
        return RichSuiteProgress(bars)

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True)) as bars:
        result = run_selection(
            project,
            plan,
            progress=progress,
            backend=backend,
            base_url=base_url,
            tracking=tracking,
            budget=budget,
        )
    if as_json:
        print_json(_selection_json(result))
    else:
        _print_selection(console, result)
    if result.failed_tasks:
        raise SystemExit(ExitCode.TASKS_FAILED)


def _selection_json(result: SelectionResult) -> dict[str, object]:
    """`chief select --json`: the choice, its evidence (as the registry records it) and every
    candidate with what the cheap layer knew of it."""

    def candidate(c: Candidate) -> dict[str, object]:
        cheap = (
            {"train_reward": c.train_reward, "heldout_reward": c.heldout_reward}
            if result.rl
            else {}
        )
        return {
            "ref": c.ref,
            "label": c.label,
            "run_id": c.run_id,
            "step": c.step,
            "lora_rank": c.lora_rank,
            "learning_rate": c.learning_rate,
            "val_nll": c.val_nll,
            **cheap,
            "headline": c.headline,
        }

    return {
        "scope": result.scope,
        "chosen": result.chosen.ref,
        "reason": result.reason,
        **result.details(),
        "candidates": [candidate(c) for c in result.candidates],
        "failed_tasks": result.failed_tasks,
        "tracker": result.tracker.to_json() if result.tracker else None,
    }


def _print_selection(console: Console, result: SelectionResult) -> None:
    cheap = ("train reward", "held-out reward") if result.rl else ("val NLL",)
    # An RL choice by held-out reward has no other headline to show.
    metric = f"{result.task}/{result.metric}" if result.metric else "headline"
    by_heldout = result.rl and result.heldout is not None and result.task == "heldout"
    table = Table(title=f"candidates of {result.scope}")
    for column in ("model", "point", *cheap, *([] if by_heldout else [metric]), ""):
        table.add_column(column)
    shortlisted = {c.ref for c in result.shortlist}
    for c in result.candidates:
        mark = (
            "chosen"
            if c.ref == result.chosen.ref
            else ("shortlist" if c.ref in shortlisted else "")
        )
        values = (c.train_reward, c.heldout_reward) if result.rl else (c.val_nll,)
        headline = [] if by_heldout else ["-" if c.headline is None else f"{c.headline:.4g}"]
        table.add_row(
            escape(c.ref), escape(c.label), *(_number(v) for v in values), *headline, mark
        )
    console.print(table)
    if result.heldout is not None:
        h = result.heldout
        how = f"{h['answers']} answers to {h['prompts']} held-out prompts, grader {h['grader']}"
        console.print(escape(f"held-out reward: {how}"))
    for failure in result.failed_tasks:
        console.print(f"[yellow]eval failed[/yellow]: {escape(failure)}")
    console.print(escape(f"chosen: {result.chosen.ref} ({result.chosen.label}): {result.reason}"))
    console.print(
        escape(
            f"marked as the candidate of {result.scope} in the registry; not promoted "
            f"(`chief promote {result.chosen.ref} --to prod` runs the gate)"
        )
    )
    if result.tracker is not None:
        console.print(escape(f"tracker: {result.tracker.describe()}"), soft_wrap=True)
