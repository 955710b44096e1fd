"""`chief init` and `chief plan`: parse flags, call `tinker_chief.planning`, print a summary."""

from __future__ import annotations

from pathlib import Path

import click


@click.command(name="init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=".")
@click.option("--use-case", type=click.Choice(["chat", "code", "math", "agent"]), required=True,
              help="Chooses the eval-suite template.")
@click.option("--base-model", required=True, help="Catalog name, local HF model directory or cached hub id.")
@click.option("--train", "train", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Training JSONL.")
@click.option("--val", "val", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Held-out JSONL; without it ~10% of --train is held out into data/.")
@click.option("--task", type=click.Choice(["sl", "rl", "dpo", "distill"]), default="sl", show_default=True)
@click.option("--name", default=None, help="Project name (default: the directory name).")
@click.option("--force", is_flag=True, help="Overwrite an existing chief.toml.")
def init_command(directory: Path, use_case: str, base_model: str, train: Path, val: Path | None, task: str,
                 name: str | None, force: bool) -> None:
    """Create a project: chief.toml, the use case's eval suite and scripts/run_inspect_evals.sh."""
    from tinker_chief.planning.project import init_project

    project = init_project(directory, use_case=use_case, base_model=base_model, train=train, val=val, task=task,
                           name=name, force=force)
    cfg = project.config
    click.echo(f"Created {project.config_path}")
    click.echo(f"  base model {cfg.base_model} (renderer {cfg.renderer}), task {cfg.task}, use case {cfg.use_case}")
    click.echo(f"  data: train {cfg.data.train}, val {cfg.data.val}")
    click.echo(f"  LoRA rank {cfg.lora.rank}, learning rate {cfg.optimizer.learning_rate:g}, "
               f"batch {cfg.schedule.batch_size}, epochs {cfg.schedule.epochs}")
    click.echo(f"  eval suite {cfg.eval_suite.name} ({len(cfg.eval_suite.tasks)} tasks), "
               "scripts/run_inspect_evals.sh")
    click.echo("Next: chief plan" + ("" if str(directory) == "." else f" {directory}"))


@click.command(name="plan")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=".")
@click.option("--allow-attention-only", is_flag=True,
              help="Plan attention-only LoRA anyway (it underperforms MLP+attention).")
def plan_command(directory: Path, allow_attention_only: bool) -> None:
    """Write plan.md and plan.json: every recommendation with its rule and source."""
    from rich.console import Console
    from rich.markup import escape

    from tinker_chief.planning import load_project
    from tinker_chief.planning.plan import make_plan
    from tinker_chief.planning.project import write_plan_files
    from tinker_chief.planning.report import duration

    project = load_project(directory)
    plan = make_plan(project, allow_attention_only=allow_attention_only)
    paths = write_plan_files(project, plan)
    console = Console()
    d, c, s = plan.data, plan.capacity, plan.schedule
    console.print(f"[bold]Plan for {escape(plan.project)}[/bold]: {escape(plan.base_model)}, task {plan.task}, "
                  f"use case {plan.use_case}")
    console.print(f"  data: {d.examples:,} examples, {d.total_tokens:,} tokens, {d.completion_tokens:,} trained")
    ratio = c.capacity_ratio_at_configured_rank
    console.print(f"  LoRA rank {c.configured_rank} (recommended {c.recommended_rank.value}), capacity ratio "
                  f"{'n/a' if ratio is None else f'{ratio:.3g}'}")
    rec = plan.learning_rate.recommended
    console.print(f"  learning rate {plan.learning_rate.configured:g}"
                  + (f" (recommended {rec.value:.3g})" if rec else ""))
    console.print(f"  batch {s.configured_batch_size}, {s.total_steps:,} steps, {s.lr_schedule} schedule")
    cost = plan.estimates.tinker_cost.dollars
    seconds = plan.estimates.local_time.seconds
    console.print(f"  estimates: Tinker {'unknown' if cost is None else f'${cost:,.2f}'}, local "
                  f"{'unknown' if seconds is None else duration(seconds)}")
    for warning in plan.warnings:
        console.print(f"  [yellow]warning:[/yellow] {escape(warning)}", highlight=False)
    console.print(escape(f"Wrote {paths['markdown']}, {paths['json']}, {paths['script']}"))
