"""Published benchmarks in a suite: the unmodified Inspect Evals task, its data and its sandbox.

A suite task `inspect_task = "inspect_evals/<name>"` runs the task the installed `inspect_evals`
package defines, as published. Its data comes from the Hugging Face hub at the revision the
task pins (online), or from the local `datasets` cache, where `chief benchmarks stage` puts rows
from a local file (`hub_data.py`). When the hub is off (`HF_HUB_OFFLINE=1`) and a split is not
cached, the task is refused with one line naming `chief benchmarks stage`. Tasks that run
model-written code in a Docker sandbox run in chief's bubblewrap sandbox when no Docker daemon
answers (`inspect_sandbox.py`). What ran is recorded: task version (Inspect Evals' own) and,
per dataset split, the revision, the row count and, when staged, the file it came from.

Other Inspect tasks (`tinker_chief/jsonl_task`, `file.py@task`) run as given, with the suite
task's `data` file as the `data` task argument.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tinker_chief.errors import EvalError
from tinker_chief.evals.hub_data import HubLoad, TaskData, cached_split, task_data
from tinker_chief.evals.suite import PUBLISHED_PREFIX, EvalTask

if TYPE_CHECKING:
    from inspect_ai import Task


@dataclass
class ResolvedTask:
    """What `inspect eval` runs for a suite task, and what to record about its data."""

    task: str | Task  # a Task built by Inspect's registry, or a task name
    task_args: dict[str, object] = field(default_factory=dict)
    sandbox: str | None = None
    dataset: list[dict[str, object]] = field(default_factory=list)


def hub_offline() -> bool:
    return any(
        os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")
        for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    )


def stage_hint(data: TaskData, load: HubLoad | None = None) -> str:
    """The command that stages `load` (default: the split the task evaluates on)."""
    split = (
        f" --split {load.split}"
        if load is not None and data.loads and load != data.loads[-1]
        else ""
    )
    return f"chief benchmarks stage {data.task.removeprefix(PUBLISHED_PREFIX)} --from FILE{split}"


def published_task_args(ref: str, shots: int | None) -> dict[str, object]:
    """The suite's `shots` as the task's `fewshot` argument, where the task takes one."""
    from inspect_ai._util.registry import registry_info, registry_lookup

    found = registry_lookup("task", ref)
    if found is None:
        raise EvalError(
            f"benchmark `{ref}`: no such task in the installed inspect_evals "
            "(see `inspect list tasks` or https://ukgovernmentbeis.github.io/inspect_evals/)"
        )
    params = registry_info(found).metadata.get("params", [])
    return {"fewshot": shots} if shots is not None and "fewshot" in params else {}


def data_records(data: TaskData) -> list[dict[str, object]]:
    """Per hub split: revision and where the rows are (staged file, hub cache, or the hub)."""
    records: list[dict[str, object]] = []
    for load in data.loads:
        cached = cached_split(load)
        origin = "hub" if cached is None else ("staged" if cached.staged_from else "hub cache")
        records.append(
            {
                **load.as_json(),
                "origin": origin,
                "rows": cached.rows if cached else None,
                "staged_from": cached.staged_from if cached else None,
            }
        )
    return records


def check_reachable(data: TaskData) -> None:
    """Refuse, in one line, a task whose data is neither online nor in the cache."""
    missing: list[HubLoad] = [load for load in data.loads if cached_split(load) is None]
    if missing and hub_offline():
        raise EvalError(
            f"benchmark `{data.task}` needs {missing[0].describe()}, which is neither online "
            f"(HF_HUB_OFFLINE is set) nor staged: run `{stage_hint(data, missing[0])}`"
        )


@contextlib.contextmanager
def _no_datasets_progress_bars() -> Iterator[None]:
    """`datasets` without its progress bars: Inspect saves its own copy of a pinned dataset on
    every load ("Saving the dataset (1/1 shards)"), a bar that would cut through chief's."""
    import datasets

    shown = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if shown:
            datasets.enable_progress_bars()


def resolve_published(ref: str, shots: int | None = None) -> ResolvedTask:
    """Build the installed task `ref` (data loaded) and choose its sandbox."""
    from inspect_ai._eval.registry import task_create

    from tinker_chief.evals.inspect_sandbox import code_sandbox

    task_args = published_task_args(ref, shots)
    data = task_data(ref, task_args)
    check_reachable(data)
    try:
        # Inspect prints what it loads on stdout, which may carry --json: to stderr with it.
        with contextlib.redirect_stdout(sys.stderr), _no_datasets_progress_bars():
            built = task_create(ref, **task_args)
    except Exception as error:  # noqa: BLE001 - the published task's own failure, in one line
        lines = str(error).strip().splitlines()
        hint = f"; offline, stage its data: `{stage_hint(data)}`" if data.loads else ""
        raise EvalError(
            f"benchmark `{ref}` could not load its data "
            f"({type(error).__name__}: {lines[0] if lines else ''}){hint}"
        ) from None
    return ResolvedTask(built, task_args, code_sandbox(built.sandbox), data_records(data))


def inspect_task_for(task: EvalTask, project_dir: Path) -> ResolvedTask:
    """The task a suite entry of kind `inspect` runs, with its arguments and sandbox."""
    ref = task.inspect_task or ""
    if ref.startswith(PUBLISHED_PREFIX):
        return resolve_published(ref, task.settings.shots)
    return ResolvedTask(ref, {"data": str(project_dir / task.data)} if task.data else {})
