"""`chief demo`: the README's main job, end to end on the embedded SmolLM2, in six screens.

Composed only of the capabilities' library calls: `training.demo.create_demo_project` (the
synthetic skill + the planner's `init_project`), `planning.make_plan`, one local engine shared
by `evals.run_suite` and `training.train_project`, `training.demo_promotion` (compare, the
gate, MODEL_REGISTRY.md) and `reports.write_report`. It prints; the logic lives in the libraries.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel


def _screen(console: Console, number: int, title: str, started: float) -> None:
    console.print()
    console.rule(f"[bold]{number}/6  {title}[/bold]  [dim]({time.monotonic() - started:.0f}s)[/dim]")


def _plan(console: Console, demo: Any) -> None:
    from tinker_chief.planning import make_plan
    from tinker_chief.planning.project import write_plan_files

    project = demo.project
    plan = make_plan(project)
    paths = write_plan_files(project, plan)
    cfg = project.config
    console.print(f"skill: 'What is the secret code for <word>?' -> '<word>-<word>-7' "
                  f"({len(demo.train_file.read_text().splitlines())} training examples incl. "
                  f"{demo.n_contrast} contrast rows, "
                  f"{len(demo.heldout_file.read_text().splitlines())} held out)")
    console.print(f"base model {cfg.base_model}, LoRA rank {cfg.lora.rank} (mlp+attn+unembed), "
                  f"lr {cfg.optimizer.learning_rate:.3g}, batch {cfg.schedule.batch_size}, "
                  f"{plan.schedule.total_steps} steps")
    if plan.learning_rate.recommended is not None:
        console.print(f"  lr rule: {plan.learning_rate.recommended.rule}")
    console.print(f"  rank rule: {plan.capacity.recommended_rank.rule}" if plan.capacity else "")
    for note in demo.overrides:
        console.print(f"  demo budget: {note}")
    console.print(escape(f"plan written: {paths['markdown']}"))


def _evaluate(console: Console, project: Any, model: str, connection: Any, label: str) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from tinker_chief.cli.eval import RichSuiteProgress, print_suite
    from tinker_chief.evals.runner import run_suite
    from tinker_chief.registry import Registry

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Registry.open(project.registry_path) as registry, Progress(*columns, console=console) as bars:
        result = run_suite(project.config.eval_suite, model, connection, project_dir=project.root,
                           registry=registry, progress=RichSuiteProgress(bars))
    print_suite(result)
    if result.failed:
        console.print(f"[yellow]{label}: {len(result.failed)} task(s) failed; "
                      "the gate will see missing evidence[/yellow]")
    return result


def _print_promotion(console: Console, promotion: Any) -> None:
    """The comparison table, then each gate verdict with its notes or reasons."""
    from tinker_chief.cli.registry import print_comparison

    def score(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3g}"

    console.print(f"held-out exact match on `{promotion.task}`: base {score(promotion.base_score)} -> "
                  f"checkpoint {score(promotion.candidate_score)}")
    print_comparison(promotion.comparison, promotion.alpha)
    for step in promotion.steps:
        for note in step.report.notes:
            console.print(f"  gate note: {escape(note)}")
        if step.promoted:
            moved = f" ({step.report.prod_ref} moved to staging)" if step.report.prod_ref else ""
            console.print(f"[green]gate verdict: {step.ref} passed -> prod{moved}[/green] ({step.why})")
        else:
            console.print(f"[yellow]gate verdict: {step.ref} refused for prod[/yellow] ({step.why}):")
            for reason in step.refusal:
                console.print(f"  - {escape(reason)}")
    if promotion.better_ref == promotion.base_ref:
        console.print(f"the checkpoint is not better on `{promotion.task}`, so it was not put to the gate")
    console.print(f"in prod now: {promotion.prod_ref or 'no model'}")


def _paper_trail(project: Any) -> tuple[Path, Path]:
    from tinker_chief.reports import write_report
    from tinker_chief.training.demo_promotion import write_registry_markdown

    return write_registry_markdown(project), write_report(project.root)


@click.command(name="demo")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=Path("chief-demo"),
              show_default=True, help="Where to create the demo project (an earlier demo there is replaced).")
@click.option("--steps", type=click.IntRange(min=1), default=None,
              help="Train this many steps instead of the plan's (for a quicker look).")
@click.option("--base-model", default=None,
              help="Another catalog model (e.g. tiny-random-llama for a smoke run) "
                   "[default: SmolLM2-135M-Instruct-Q4_1].")
def demo_command(directory: Path, steps: int | None, base_model: str | None) -> None:
    """The whole workflow on the embedded SmolLM2, on CPU, in a few minutes.

    Creates a project with a synthetic skill, plans it, evaluates the base model,
    LoRA-trains on the local engine, evaluates the checkpoint, records both in the
    registry, promotes the better one through the gate, and writes MODEL_REGISTRY.md
    and report.html.

    \b
    Example:
      chief demo --dir /tmp/chief-demo
    """
    from tinker_chief.cli.train import RichProgress
    from tinker_chief.evals.connection import start_local
    from tinker_chief.training import train_project
    from tinker_chief.training.demo import CUSTOM_TASK, create_demo_project
    from tinker_chief.training.demo_promotion import promote_better

    logging.getLogger("tinker").setLevel(logging.ERROR)  # the SDK logs every long-poll retry
    console, started = Console(), time.monotonic()
    console.print(Panel.fit("tinker-chief demo: plan -> train -> evaluate -> gate -> promote, on CPU",
                            style="bold"))
    _screen(console, 1, "Project and plan (the doctrine picks every number)", started)
    demo = create_demo_project(directory, max_steps=steps, base_model=base_model)
    project = demo.project
    _plan(console, demo)

    _screen(console, 2, "Local engine; evaluate the base model", started)
    with start_local(project.root / ".chief" / "engine", models=[project.config.base_model]) as connection:
        console.print(escape(f"engine at {connection.base_url} (state in {project.root / '.chief' / 'engine'})"))
        base = _evaluate(console, project, project.config.base_model, connection, "base model")

        _screen(console, 3, "LoRA training through the tinker SDK", started)
        result = train_project(project, base_url=connection.base_url, observer=RichProgress(console))
        candidate_ref = result.final.registry_ref if result.final else None
        if candidate_ref is None:
            raise click.ClickException("training produced no checkpoint")

        _screen(console, 4, f"Evaluate the trained checkpoint {candidate_ref}", started)
        tuned = _evaluate(console, project, candidate_ref, connection, "checkpoint")

    _screen(console, 5, "Compare, then promote the better model through the gate", started)
    promotion = promote_better(project, base.model_ref, candidate_ref, base, tuned, CUSTOM_TASK)
    _print_promotion(console, promotion)

    _screen(console, 6, "Paper trail", started)
    markdown, report = _paper_trail(project)
    console.print(escape(f"registry: {markdown}\nreport:   {report}\nplan:     {project.root / 'plan.md'}"))
    console.print(f"[bold green]demo finished in {time.monotonic() - started:.0f}s[/bold green]")
