"""A suite task whose every answer is unscored, through `chief eval` on the
real engine: the chat template's `product` task grades with `llm_judge`, and with no
`judge_model` the tiny random model judges itself and never writes a readable verdict.

The run is recorded anyway (0 scored, the counts, and why), so the gate says "not scored: ..."
instead of reporting the task missing forever, and re-running does not fail on the cached result.
"""

from __future__ import annotations

import json

from tinker_chief.registry import Registry

from cli_support import run_chief as chief
from jsonl_support import write_jsonl

TINY = "tiny-random-llama"


def test_a_task_nobody_can_score_is_recorded_as_not_scored(engine, tmp_path):
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"Name the colour number {i}."},
                {"role": "assistant", "content": f"colour {i}"},
            ]
        }
        for i in range(20)
    ]
    write_jsonl(tmp_path / "train.jsonl", rows)
    init = chief(
        "init",
        "-p",
        "proj",
        "--use-case",
        "chat",
        "--base-model",
        TINY,
        "--train",
        "train.jsonl",
        cwd=tmp_path,
    )
    assert init.returncode == 0, init.stderr
    project = tmp_path / "proj"

    ran = chief(
        "eval",
        TINY,
        "--project",
        str(project),
        "--task",
        "product",
        "--base-url",
        engine.base_url,
        "--json",
        cwd=tmp_path,
    )
    assert ran.returncode == 0, ran.stderr
    (task,) = json.loads(ran.stdout)["tasks"]  # strict JSON: no NaN anywhere
    assert task["error"] is None and task["run_id"] is not None
    assert (
        "accuracy" not in task["metrics"]
        and task["metrics"]["unscored"]["value"] == task["ran_samples"] > 0
    )
    why = task["settings"]["not_scored"]["accuracy"]
    assert (
        why.startswith(f"0 samples scored: {task['ran_samples']} unscored by the grader")
        and "judge_model" in why
    )

    with Registry.open(project / ".chief" / "registry.db", create=False) as registry:
        run = registry.latest_results(f"base/{TINY}:v1")["product"]
        assert run.not_scored == {"accuracy": why} and "accuracy" not in run.metrics

    again = chief(
        "eval",
        TINY,
        "--project",
        str(project),
        "--task",
        "product",
        "--base-url",
        engine.base_url,
        cwd=tmp_path,
    )
    assert again.returncode == 0 and "product/accuracy not scored" in again.stdout, again.stderr

    gate = chief("promote", f"base/{TINY}", "--to", "prod", "--project", str(project), cwd=tmp_path)
    assert gate.returncode == 3
    assert "not scored: task `product`" in gate.stderr and "task `product` of suite" in gate.stderr
    assert "stale or missing eval: task `product`" not in gate.stderr
