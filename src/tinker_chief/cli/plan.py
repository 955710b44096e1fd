"""`chief init` and `chief plan`: parse flags, call `tinker_chief.planning`, print a summary."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

import click

from tinker_chief.cli.options import (
    json_option,
    new_project_option,
    old_spelling,
    print_json,
    project_option,
    trust_remote_code_option,
)

if TYPE_CHECKING:
    from tinker_chief.workspace import Workspace


RECIPES = click.Choice(["sl", "rl", "dpo", "distill"])
DIRECTORY = click.Path(file_okay=False, path_type=Path)


@click.command(name="init")
@new_project_option(Path("."), "The project directory to create (chief.toml, data/, scripts/).")
@click.option(
    "--use-case",
    type=click.Choice(["chat", "code", "math", "agent"]),
    required=True,
    help="Chooses the eval-suite template.",
)
@click.option(
    "-m",
    "--base-model",
    required=True,
    help="Catalog name, a model of Tinker's lineup, local HF model directory or hub id (org/name).",
)
@click.option(
    "--train",
    "train",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Training JSONL.",
)
@click.option(
    "--val",
    "val",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Held-out JSONL; without it ~10% of --train is held out into data/.",
)
@click.option(
    "--recipe",
    type=RECIPES,
    default="sl",
    show_default=True,
    help="The training recipe: supervised (sl), RL with verifiable rewards (rl), preferences "
    "(dpo) or prompt distillation (distill).",
)
@click.option(
    "--name",
    default=None,
    help="Project name, the name its checkpoints are registered under "
    "(default: the directory name).",
)
@click.option("--force", is_flag=True, help="Overwrite an existing chief.toml.")
@trust_remote_code_option
@json_option
@old_spelling("DIRECTORY", "--project", "project_dir", type=DIRECTORY)
@old_spelling("--task", "--recipe", "recipe", type=RECIPES)
def init_command(
    project_dir: Path,
    use_case: str,
    base_model: str,
    train: Path,
    val: Path | None,
    recipe: str,
    name: str | None,
    force: bool,
    trust_remote_code: bool,
    as_json: bool,
) -> None:
    """Create a project: chief.toml, the use case's eval suite and scripts/run_inspect_evals.sh.

    With --trust-remote-code, chief.toml records it and `chief plan` runs the model's code too.

    \b
    Example:
      chief init -p bot --use-case chat -m SmolLM2-135M-Instruct-Q4_1 \\
          --train train.jsonl --recipe sl
    """
    from tinker_chief.planning.project_files import init_project

    project = init_project(
        project_dir,
        use_case=use_case,
        base_model=base_model,
        train=train,
        val=val,
        recipe=recipe,
        name=name,
        force=force,
        trust_remote_code=trust_remote_code,
    )
    cfg = project.config
    if as_json:
        print_json({"created": str(project.config_path), "config": cfg.model_dump(mode="json")})
        return
    click.echo(f"Created {project.config_path}")
    click.echo(
        f"  base model {cfg.base_model} (renderer {cfg.renderer}), "
        f"recipe {cfg.recipe}, use case {cfg.use_case}"
    )
    click.echo(f"  data: train {cfg.data.train}, val {cfg.data.val}")
    click.echo(
        f"  LoRA rank {cfg.lora.rank}, learning rate {cfg.optimizer.learning_rate:g}, "
        f"batch {cfg.schedule.batch_size}, epochs {cfg.schedule.epochs}"
    )
    click.echo(
        f"  eval suite {cfg.eval_suite.name} ({len(cfg.eval_suite.tasks)} tasks), "
        "scripts/run_inspect_evals.sh"
    )
    click.echo("Next: chief plan" + ("" if str(project_dir) == "." else f" -p {project_dir}"))


@click.command(name="plan")
@project_option
@click.option(
    "--allow-attention-only",
    is_flag=True,
    help="Plan attention-only LoRA anyway (it underperforms MLP+attention).",
)
@click.option(
    "--calibrate",
    is_flag=True,
    help="First measure the local engine's training speed for the model on this machine (a short "
    "probe that starts an engine; cached per machine and model).",
)
@click.option(
    "--probe-rewards",
    is_flag=True,
    help="RL projects: first sample a few prompts x group_size rollouts of the base model, grade "
    "them with the project's reward and show whether groups carry a learning signal (on the "
    "backend `chief train` would use).",
)
@json_option
@old_spelling("DIRECTORY", "--project", "project_dir", type=DIRECTORY)
def plan_command(
    project_dir: Path,
    allow_attention_only: bool,
    calibrate: bool,
    probe_rewards: bool,
    as_json: bool,
) -> None:
    """Write plan.md and plan.json: every recommendation with its rule and source.

    \b
    Examples:
      chief plan -p bot
      chief plan -p bot --probe-rewards --json
    """
    from rich.console import Console
    from rich.markup import escape

    from tinker_chief.planning.plan_markdown import duration
    from tinker_chief.planning.planner import make_plan
    from tinker_chief.planning.project_files import write_plan_files
    from tinker_chief.workflows.sweeping import latest_summary_lines
    from tinker_chief.workspace import Workspace

    project = Workspace.open(project_dir)
    found: dict[str, object] = {}
    if calibrate:
        from tinker_chief.workflows.calibrate import probe_throughput

        measured = probe_throughput(project)
        found["calibration"] = dataclasses.asdict(measured)
        click.echo(
            f"Calibrated: {measured.train_tokens_per_s:,.0f} trained tokens/s ({measured.source})",
            err=as_json,
        )
    if probe_rewards:
        found["reward_probe"] = _print_reward_probe(project, err=as_json)
    plan = make_plan(project, allow_attention_only=allow_attention_only)
    paths = write_plan_files(project, plan)
    if as_json:
        files = {kind: str(path) for kind, path in paths.items()}
        print_json({"plan": plan.model_dump(mode="json"), "files": files, **found})
        return
    console = Console()
    d, c, s = plan.data, plan.capacity, plan.schedule
    console.print(
        f"[bold]Plan for {escape(plan.project)}[/bold]: {escape(plan.base_model)}, "
        f"recipe {plan.recipe}, use case {plan.use_case}"
    )
    console.print(
        f"  data: {d.examples:,} examples, {d.total_tokens:,} tokens, "
        f"{d.completion_tokens:,} trained"
    )
    ratio = c.capacity_ratio_at_configured_rank
    console.print(
        f"  LoRA rank {c.configured_rank} (recommended {c.recommended_rank.value}), capacity ratio "
        f"{'n/a' if ratio is None else f'{ratio:.3g}'}"
    )
    rec = plan.learning_rate.recommended
    console.print(
        f"  learning rate {plan.learning_rate.configured:g}"
        + (f" (recommended {rec.value:.3g})" if rec else "")
    )
    console.print(
        f"  batch {s.configured_batch_size}, {s.total_steps:,} steps, {s.lr_schedule} schedule"
    )
    e = plan.estimates
    cost, seconds = e.tinker_cost.dollars, e.local_time.seconds
    eval_cost = e.eval_cost.dollars if e.eval_cost else None
    tinker = (
        f"no known price for {escape(plan.base_model)}"
        if cost is None
        else f"${cost:,.2f} to train, "
        + ("?" if eval_cost is None else f"${eval_cost:,.2f}")
        + " per eval of the suite"
    )
    local = "unknown" if seconds is None else duration(seconds)
    console.print(
        f"  estimates: Tinker {tinker}; local {local} (speed from the {e.local_time.basis})",
        highlight=False,
    )
    for warning in plan.warnings:
        console.print(f"  [yellow]warning:[/yellow] {escape(warning)}", highlight=False)
    for line in latest_summary_lines(project.root):  # was the planner right? (after `chief sweep`)
        console.print(escape(f"  {line}"), highlight=False)
    console.print(escape(f"Wrote {paths['markdown']}, {paths['json']}, {paths['script']}"))


def _print_reward_probe(project: Workspace, err: bool) -> dict[str, object]:
    """Probe the base model's RL rewards, print what it found (on stderr with `err`), return it."""
    from tinker_chief.workflows.reward_probe import probe_rewards

    probe = probe_rewards(project)
    click.echo(
        f"Reward probe ({probe.prompts} prompts x {probe.group_size} rollouts of the base model, "
        f"grader {probe.grader}): mean reward {probe.mean_reward:.2f}, "
        f"{probe.groups_with_signal:.0%} of groups with signal, "
        f"{probe.truncated:.0%} cut at max_tokens",
        err=err,
    )
    for answer, reward in probe.examples:
        click.echo(f"  reward {reward:g}: {answer[:100]!r}", err=err)
    if probe.problem:
        click.echo(f"  warning: {probe.problem}", err=err)
    return dataclasses.asdict(probe)
