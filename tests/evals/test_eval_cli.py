"""`chief eval` on a project created by `chief init`, against the real engine (tiny model): the
JSON summary, the cache, and the exit codes (1 for an unknown task, 4 when a task failed)."""

from __future__ import annotations

import json

from tinker_chief.exit_codes import ExitCode

from cli_support import assert_one_line_error, init_math_project
from cli_support import run_chief as chief

TINY = "tiny-random-llama"


def test_chief_eval_runs_selected_tasks_and_records_them(engine, tmp_path):
    project = init_math_project(tmp_path)

    ok = chief(
        "eval",
        TINY,
        "--project",
        str(project),
        "--task",
        "val_nll",
        "--base-url",
        engine.base_url,
        "--json",
        cwd=tmp_path,
    )
    assert ok.returncode == 0, ok.stderr
    result = json.loads(ok.stdout)
    (task,) = result["tasks"]
    assert task["task"] == "val_nll" and task["error"] is None and task["run_id"] is not None
    assert result["model_ref"] == f"base/{TINY}:v1"
    # The summary's speed (prompt + sampled tokens of the tasks run now) and the engine's precision.
    assert result["precision"] == "float32" and result["tokens_per_s"] > 0
    assert result["tokens_per_s"] == round(sum(task["tokens"].values()) / task["seconds"], 1)

    where = ("--project", str(project), "--base-url", engine.base_url)
    cached = chief("eval", TINY, "--task", "val_nll", *where)
    assert cached.returncode == 0, cached.stderr
    assert "speed: no prompt + sampled tokens timed; precision: float32\n" in cached.stdout

    wrong = chief(
        "eval",
        TINY,
        "--project",
        str(project),
        "--task",
        "nope",
        "--base-url",
        engine.base_url,
        cwd=tmp_path,
    )
    assert (
        wrong.returncode == 1
        and "has no task(s) ['nope']" in wrong.stderr
        and "Traceback" not in wrong.stderr
    )

    (project / "data" / "val_qa.jsonl").unlink()  # the product task's data: that task fails
    partial = chief(
        "eval", TINY, "--task", "val_nll", "--task", "product", "--json", *where, cwd=tmp_path
    )
    assert partial.returncode == ExitCode.TASKS_FAILED, (
        partial.stderr
    )  # not an error's 1: the rest ran
    outcomes = {task["task"]: task for task in json.loads(partial.stdout)["tasks"]}
    assert outcomes["val_nll"]["error"] is None and "val_qa.jsonl" in outcomes["product"]["error"]


def test_a_version_the_registry_lacks_is_one_error_line_before_any_engine(tmp_path):
    project = init_math_project(tmp_path)
    for ref in ("nope:v9", f"{TINY}:v99999999999999999999999"):
        result = chief("eval", ref, "-p", str(project), "--task", "val_nll", cwd=tmp_path)
        assert_one_line_error(result, f"no model `{ref}` in the registry", "chief registry list")
    assert not (project / ".chief" / "engine").exists()  # refused before an engine started
