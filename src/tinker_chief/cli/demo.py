"""`chief demo`: the README's main job, end to end on the embedded SmolLM2, in six screens.

Parses the flags and prints: `tinker_chief.workflows.demo.run_demo` does the work (project,
plan, engine, evals, training, gate, paper trail) and reports each step to `RichDemo`, which
draws it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel

from tinker_chief.cli.options import new_project_option, old_spelling, track_option, tracker_warning

if TYPE_CHECKING:  # imported lazily at run time so `chief --help` stays fast
    from tinker_chief.evals.runner import ProgressSink
    from tinker_chief.planning import Plan
    from tinker_chief.training import Observer, TrainResult
    from tinker_chief.workflows.demo import DemoProject, DemoPromotion, DemoRun
    from tinker_chief.workflows.evaluation import Evaluation


def _print_plan(console: Console, demo: DemoProject, plan: Plan, files: dict[str, Path]) -> None:
    cfg = demo.project.config
    console.print(
        f"skill: 'What is the secret code for <word>?' -> '<word>-<word>-7' "
        f"({len(demo.train_file.read_text().splitlines())} training examples incl. "
        f"{demo.n_contrast} contrast rows, "
        f"{len(demo.heldout_file.read_text().splitlines())} held out)"
    )
    console.print(
        f"base model {cfg.base_model}, LoRA rank {cfg.lora.rank} (mlp+attn+unembed), "
        f"lr {cfg.optimizer.learning_rate:.3g}, batch {cfg.schedule.batch_size}, "
        f"{plan.schedule.total_steps} steps"
    )
    if plan.learning_rate.recommended is not None:
        console.print(f"  lr rule: {plan.learning_rate.recommended.rule}")
    console.print(f"  rank rule: {plan.capacity.recommended_rank.rule}" if plan.capacity else "")
    for note in demo.overrides:
        console.print(f"  demo budget: {note}")
    console.print(escape(f"plan written: {files['markdown']}"))


def _print_promotion(console: Console, promotion: DemoPromotion) -> None:
    """The comparison table, then each gate verdict with its notes or reasons."""
    from tinker_chief.cli.registry import print_comparison

    def score(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3g}"

    console.print(
        f"held-out exact match on `{promotion.task}`: base {score(promotion.base_score)} -> "
        f"checkpoint {score(promotion.candidate_score)}"
    )
    print_comparison(promotion.comparison, promotion.alpha)
    for step in promotion.steps:
        for note in step.report.notes:
            console.print(f"  gate note: {escape(note)}")
        if step.promoted:
            moved = f" ({step.report.prod_ref} moved to staging)" if step.report.prod_ref else ""
            console.print(
                f"[green]gate verdict: {step.ref} passed -> prod{moved}[/green] ({step.why})"
            )
        else:
            console.print(
                f"[yellow]gate verdict: {step.ref} refused for prod[/yellow] ({step.why}):"
            )
            for reason in step.refusal:
                console.print(f"  - {escape(reason)}")
    if promotion.better_ref == promotion.base_ref:
        console.print(
            f"the checkpoint is not better on `{promotion.task}`, so it was not put to the gate"
        )
    console.print(f"in prod now: {promotion.prod_ref or 'no model'}")


def _export_prod(console: Console, run: DemoRun) -> None:
    """The demo's last act: the checkpoint the gate put in prod, exported as a PEFT adapter
    directory and checked by a round trip (`chief export`; nothing is pushed)."""
    if run.promotion.prod_ref != run.candidate_ref:
        console.print(
            f"export: the checkpoint is not in prod, so there is nothing to export "
            f"(`chief export {run.candidate_ref}` exports any version)"
        )
        return
    from tinker_chief.publish import export_model

    done = export_model(
        run.demo.project,
        run.candidate_ref,
        out_dir=run.demo.project.root / "export",
        backend="local",
    )
    check = done.roundtrip
    console.print(
        escape(
            f"export:   {done.directory} (PEFT adapter + model card); round trip with plain "
            f"transformers + PEFT within {check.max_abs_diff:.2g} of the engine "
            f"(tolerance {check.tolerance:g})"
        )
    )


class RichDemo:
    """A `demo.DemoObserver` drawing each step of `run_demo` as a screen on `console`."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.started = time.monotonic()

    def step(self, number: int, title: str) -> None:
        self.console.print()
        self.console.rule(
            f"[bold]{number}/6  {title}[/bold]  [dim]({time.monotonic() - self.started:.0f}s)[/dim]"
        )

    def planned(self, demo: DemoProject, plan: Plan, files: dict[str, Path]) -> None:
        _print_plan(self.console, demo, plan, files)

    def engine_started(self, base_url: str | None, state_dir: Path) -> None:
        self.console.print(escape(f"engine at {base_url} (state in {state_dir})"))

    @contextmanager
    def evaluating(self, label: str) -> Iterator[ProgressSink]:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        from tinker_chief.cli.eval import RichSuiteProgress

        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=self.console) as bars:
            yield RichSuiteProgress(bars)

    def evaluated(self, label: str, evaluation: Evaluation) -> None:
        from tinker_chief.cli.eval import print_suite, speed_line

        result = evaluation.result
        print_suite(result)
        self.console.print(escape(speed_line(evaluation)), soft_wrap=True)
        if result.failed:
            self.console.print(
                f"[yellow]{label}: {len(result.failed)} task(s) failed; "
                "the gate will see missing evidence[/yellow]"
            )

    def trainer(self) -> Observer:
        from tinker_chief.cli.train import RichProgress

        return RichProgress(self.console)

    def trained(self, result: TrainResult) -> None:
        from tinker_chief.cli.train import run_speed

        self.console.print(escape(run_speed(result.run_dir).line()), soft_wrap=True)

    def promoted(self, promotion: DemoPromotion) -> None:
        _print_promotion(self.console, promotion)


@click.command(name="demo")
@new_project_option(
    Path("chief-demo"), "Where to create the demo project (an earlier demo there is replaced)."
)
@click.option(
    "--steps",
    type=click.IntRange(min=1),
    default=None,
    help="Train this many steps instead of the plan's (for a quicker look).",
)
@click.option(
    "-m",
    "--base-model",
    default=None,
    help="Another catalog model (e.g. tiny-random-llama for a smoke run) "
    "[default: SmolLM2-135M-Instruct-Q4_1].",
)
@old_spelling("--dir", "--project", "project_dir", type=click.Path(file_okay=False, path_type=Path))
@track_option
def demo_command(
    project_dir: Path,
    steps: int | None,
    base_model: str | None,
    track: str | None,
) -> None:
    """The whole workflow on the embedded SmolLM2, on CPU, in a few minutes.

    Creates a project with a synthetic skill, plans it, evaluates the base model,
    LoRA-trains on the local engine, evaluates the checkpoint, records both in the
    registry, promotes the better one through the gate, writes MODEL_REGISTRY.md
    and report.html, and exports a promoted checkpoint (verified, not pushed).
    With --track the training run, both evals and the gate's verdicts go to the tracker too.

    \b
    Examples:
      chief demo -p /tmp/chief-demo
      chief demo --track mlflow
    """
    # Everything the demo uses is on this machine (the embedded model, HumanEval staged from the
    # installed package), so it runs offline: `datasets` then reads the staged copy at once instead
    # of retrying an unreachable hub. Set before the hub libraries are imported (they read it once).
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from tinker_chief.workflows.demo import run_demo

    logging.getLogger("tinker").setLevel(logging.ERROR)  # the SDK logs every long-poll retry
    console = Console()
    console.print(
        Panel.fit(
            "tinker-chief demo: plan -> train -> evaluate -> gate -> promote, on CPU", style="bold"
        )
    )
    screens = RichDemo(console)
    run = run_demo(
        project_dir,
        screens,
        steps=steps,
        base_model=base_model,
        track=track,
        warn=tracker_warning,
    )
    trail = run.trail
    console.print(
        escape(
            f"registry: {trail.registry_markdown}\nreport:   {trail.report}\nplan:     {trail.plan}"
        )
    )
    _export_prod(console, run)
    console.print(
        f"[bold green]demo finished in {time.monotonic() - screens.started:.0f}s[/bold green]"
    )
