"""`chief train`: run the project's plan (thin: parse, call `training.train_project`, print).

Also home of `RichProgress`, the training observer the CLI and `chief demo` render: a rich
progress bar with step/total, loss, tokens/s and ETA, plus one line per eval and checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from tinker_chief.cli import options
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


class RichProgress:
    """A `training.Observer` drawing a rich progress bar on `console`."""

    def __init__(self, console: Console, label: str = "training") -> None:
        self.console = console
        self.label = label
        self.progress: Progress | None = None
        self.task: TaskID | None = None

    def on_start(self, run_id: str, start_step: int, total_steps: int) -> None:
        resumed = f" (resuming at step {start_step})" if start_step else ""
        self.console.print(f"[bold]run[/bold] {run_id}: {total_steps} steps{resumed}")
        self.progress = Progress(
            TextColumn("[bold blue]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TextColumn("{task.fields[tps]} tok/s"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self.progress.start()
        self.task = self.progress.add_task(
            self.label, total=total_steps, completed=start_step, loss="-", tps="-"
        )

    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        if self.progress is not None and self.task is not None:
            self.progress.update(
                self.task,
                completed=step,
                loss=f"{metrics.get('train/loss', float('nan')):.4f}",
                tps=f"{metrics.get('train/tokens_per_s', 0):.0f}",
            )

    def on_eval(self, step: int, metrics: dict[str, float]) -> None:
        shown = ", ".join(
            f"{k} {v:.4f}"
            for k, v in sorted(metrics.items())
            if not k.endswith(("/n", "/unscored", "/errors", "/ci_low", "/ci_high"))
        )
        self.console.print(f"  eval @ step {step}: {escape(shown)}")

    def on_checkpoint(self, record: CheckpointRecord) -> None:
        ref = f" -> registry {record.registry_ref}" if record.registry_ref else ""
        self.console.print(escape(f"  checkpoint @ step {record.step}: {record.sampler_path}{ref}"))

    def on_end(self, result: TrainResult) -> None:
        if self.progress is not None:
            self.progress.stop()
        if result.status == "budget":
            self.console.print(
                f"[yellow]budget reached at step {result.steps_done}/{result.total_steps}; "
                "checkpoint saved[/yellow]"
            )
        if result.status == "interrupted":
            self.console.print(
                f"[yellow]interrupted at step {result.steps_done}/{result.total_steps}; "
                "checkpoint saved, continue with `chief train --resume`[/yellow]"
            )


@click.command(name="train")
@project_option
@backend_options
@click.option(
    "--resume", is_flag=True, help="Continue the latest interrupted run from its last checkpoint."
)
@json_option
@max_usd_option
@track_option
def train_command(
    project_dir: Path,
    backend: str | None,
    base_url: str | None,
    resume: bool,
    as_json: bool,
    max_usd: str | None,
    track: str | None,
) -> None:
    """Run the project's plan through the Tinker SDK.

    Where it runs: --backend/--base-url, else $CHIEF_ENGINE_URL / $TINKER_BASE_URL,
    else the project's [backend], else Tinker's cloud when TINKER_API_KEY is set,
    else a local engine started for the run (state in .chief/engine) and stopped
    afterwards; `chief eval` chooses the same way. Every checkpoint is registered in the
    project's registry; the final one is the run's candidate. Ctrl-C saves a
    checkpoint and exits 130; `chief train --resume` continues exactly where it stopped.
    A run the recipe stops (RL without a learning signal) exits 5 (see docs/CLI.md).
    With --track the run is mirrored into an experiment tracker (--resume continues it there).

    \b
    Examples:
      chief train
      chief train -p myproj --resume
      TINKER_API_KEY=... chief train --backend tinker --json
      chief train --track mlflow
    """
    from tinker_chief.errors import RunStopped
    from tinker_chief.paths import RunPaths
    from tinker_chief.spend.budget import run_stopped, training_guard
    from tinker_chief.tracking.mirror import tracking_for
    from tinker_chief.tracking.observer import fan_out
    from tinker_chief.training import train_project
    from tinker_chief.workspace import Workspace

    console = Console(stderr=as_json)  # --json keeps stdout for its one object
    project = Workspace.open(project_dir)
    guard = training_guard(project, max_usd, resume)  # refuses a run that would cross the budget
    mirror = tracking_for(project, track, tracker_warning).run_observer(project.root)
    observer = fan_out(RichProgress(console), mirror)
    result = train_project(
        project, backend=backend, base_url=base_url, resume=resume, observer=observer, guard=guard
    )
    final = result.final
    speed = run_speed(result.run_dir)
    tracked = mirror.link if mirror is not None else None
    if as_json:
        print_json(
            {
                "run_id": result.run_id,
                "status": result.status,
                "steps_done": result.steps_done,
                "total_steps": result.total_steps,
                "candidate": final.registry_ref if final else None,
                "sampler_path": final.sampler_path if final else None,
                "run_dir": str(result.run_dir),
                "metrics": str(RunPaths(result.run_dir).metrics),
                "tokens_per_s": speed.tokens_per_s,
                "precision": speed.precision,
                "reason": result.reason,
                "warnings": list(result.warnings),
                "tracker": tracked.to_json() if tracked else None,
            }
        )
    else:
        color = "green" if result.status == "finished" else "yellow"
        console.print(
            f"[bold {color}]{result.status}[/bold {color}]: "
            f"{result.steps_done}/{result.total_steps} steps, run {result.run_id}"
        )
        if final is not None:
            console.print(escape(f"candidate: {final.registry_ref or '-'}  ({final.sampler_path})"))
        console.print(escape(speed.line()), soft_wrap=True)  # one line, for scripts too
        console.print(escape(f"metrics: {RunPaths(result.run_dir).metrics}"))
        if tracked is not None:
            console.print(escape(f"tracker: {tracked.describe()}"), soft_wrap=True)
        for warning in result.warnings:
            if warning != result.reason:
                console.print(f"[yellow]warning:[/yellow] {escape(warning)}", highlight=False)
    if result.status == "budget":
        raise run_stopped(result.steps_done, result.total_steps, result.reason)
    if result.status == "stopped":
        raise RunStopped(result.reason or "the recipe stopped the run")
    if result.status == "interrupted":
        raise SystemExit(ExitCode.INTERRUPTED)


@dataclass(frozen=True)
class RunSpeed:
    """A run's trained tokens and step time, and the precision its steps ran in."""

    tokens: float
    seconds: float
    precision: str

    @property
    def tokens_per_s(self) -> float | None:
        return (
            round(self.tokens / self.seconds, 1) if self.tokens > 0 and self.seconds > 0 else None
        )

    def line(self) -> str:
        speed = options.throughput_text(self.tokens, self.seconds, "train tokens")
        return f"speed: {speed}; precision: {self.precision}"


def run_speed(run_dir: Path) -> RunSpeed:
    """The speed of the run in `run_dir`, from its metrics and status files."""
    from tinker_chief.training import RunLog

    log = RunLog(run_dir)
    steps = [row for row in log.metrics() if "train/tokens" in row and "time/step_s" in row]
    status = log.status()
    return RunSpeed(
        tokens=sum(float(row["train/tokens"]) for row in steps),
        seconds=sum(float(row["time/step_s"]) for row in steps),
        precision=options.precision_label(status.get("backend"), status.get("engine_precision")),
    )
