"""`chief benchmarks list` and `chief benchmarks stage`: the published tasks' data, online or
staged.

`list` shows, for every Inspect Evals task the use-case templates (and the project's suite)
name, whether its data is available here and what to do if not. `stage` writes rows from a
local file into the Hugging Face `datasets` cache at the revision the installed task pins
(`evals/hub_data.py`), so the unmodified task runs offline.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import NotRequired, TypedDict

import click

from tinker_chief.cli.options import json_option, print_json, project_option
from tinker_chief.files import MAX_DATA_MIB, MIB


@click.group(name="benchmarks")
def benchmarks_group() -> None:
    """Public benchmarks (Inspect Evals tasks): where their data is, and staging it offline."""


def _template_tasks(project_dir: Path) -> list[tuple[str, int]]:
    """(task ref, shots) of every template benchmark, then of the project's own suite."""
    from tinker_chief.planning.templates import BENCHMARKS

    seen: dict[str, int] = {}
    for benches in BENCHMARKS.values():
        for bench in benches:
            seen.setdefault(bench.inspect_task, bench.settings.shots)
    if (project_dir / "chief.toml").is_file():
        from tinker_chief.workspace import Workspace

        for task in Workspace.open(project_dir).config.eval_suite.tasks:
            if task.kind == "inspect" and (task.inspect_task or "").startswith("inspect_evals/"):
                seen.setdefault(task.inspect_task or "", task.settings.shots)
    return list(seen.items())


class Availability(TypedDict):
    """One task's row of `chief benchmarks list`: whether its data is here and what to do."""

    task: str
    status: str
    detail: str | None
    action: str
    splits: NotRequired[list[Mapping[str, object]]]


def availability(ref: str, shots: int) -> Availability:
    from tinker_chief.errors import EvalError
    from tinker_chief.evals.hub_data import cached_split, task_data
    from tinker_chief.evals.published_tasks import hub_offline, published_task_args, stage_hint

    try:
        data = task_data(ref, published_task_args(ref, shots))
    except EvalError as error:
        return {
            "task": ref,
            "status": "unknown",
            "detail": str(error),
            "action": "fix the task name",
        }
    if not data.loads:
        return {
            "task": ref,
            "status": "not stageable",
            "detail": data.reason,
            "action": "runs online only, with what the task fetches itself",
        }
    splits, missing = [], []
    for load in data.loads:
        cached = cached_split(load)
        if cached is None:
            missing.append(load)
            splits.append(f"{load.describe()}: not here")
        else:
            origin = (
                f"staged from {Path(cached.staged_from).name}"
                if cached.staged_from
                else "hub cache"
            )
            splits.append(f"{load.describe()}: {cached.rows} rows, {origin}")
    if not missing:
        status, action = "staged", "-"
    elif hub_offline():
        status, action = "not available", stage_hint(data, missing[0])
    else:
        status, action = (
            "online",
            "downloads from the hub on first run (offline: chief benchmarks stage)",
        )
    return {
        "task": ref,
        "status": status,
        "detail": "; ".join(splits),
        "action": action,
        "splits": [load.as_json() for load in data.loads],
    }


@benchmarks_group.command(name="list")
@project_option
@json_option
def list_command(project_dir: Path, as_json: bool) -> None:
    """Each template benchmark: available (online / staged, with rows and revision) or not, and
    what to do.

    The project's own suite tasks are listed too when the project directory has a chief.toml.
    """
    rows = [availability(ref, shots) for ref, shots in _template_tasks(project_dir)]
    if as_json:
        print_json({"benchmarks": rows})
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="Inspect Evals benchmarks")
    for column in ("task", "status", "data", "to do"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["task"], row["status"], escape(row["detail"] or ""), escape(row["action"])
        )
    Console().print(table)


@benchmarks_group.command(name="stage")
@click.argument("task")
@click.option(
    "--from",
    "source",
    required=True,
    type=click.Path(path_type=Path),
    help="Rows in the hub dataset's schema: .jsonl, .json, .csv or .parquet (optionally .gz).",
)
@click.option(
    "--split", help="Which of the task's splits the rows are [default: the one it evaluates on]."
)
@click.option(
    "--fewshot",
    type=click.IntRange(min=0),
    help="The task's `fewshot` argument, for tasks whose few-shot examples come from another "
    "split.",
)
@click.option(
    "--max-mib",
    type=click.IntRange(min=1),
    default=MAX_DATA_MIB,
    show_default=True,
    help="Refuse a file of more MiB than this, once decompressed (its rows are checked in memory).",
)
@json_option
def stage_command(
    task: str,
    source: Path,
    split: str | None,
    fewshot: int | None,
    max_mib: int,
    as_json: bool,
) -> None:
    """Write FILE's rows into the Hugging Face datasets cache for TASK (e.g. humaneval), at the
    revision the installed inspect_evals pins, so the unmodified task runs offline.

    \b
    Example:
      chief benchmarks stage humaneval --from HumanEval.jsonl.gz
    """
    from tinker_chief.evals.hub_data import pick_load, read_rows, stage, task_data

    rows = read_rows(source, max_mib * MIB)  # a bad file is refused before the task is built
    data = task_data(task, {"fewshot": fewshot} if fewshot is not None else {})
    load = pick_load(data, split)
    staged = stage(data, source, split, rows)
    result = {
        "task": data.task,
        **load.as_json(),
        "rows": staged.rows,
        "location": str(staged.location),
    }
    if as_json:
        print_json(result)
    else:
        click.echo(
            f"staged {staged.rows} rows for {data.task}: {load.describe()} -> {staged.location}"
        )
