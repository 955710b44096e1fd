"""`chief sweep` + `chief select` on the tiny model through the real SDK and engine: concurrent
runs registered with the sweep's tag and hyperparameters, the selection marked in the registry,
Ctrl-C (a real SIGINT) stopping every run and `--resume` continuing only what was unfinished,
and `chief plan` saying where the best learning rate fell."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.training.conftest import make_project
from tinker_chief.cli.main import cli
from tinker_chief.exit_codes import ExitCode
from tinker_chief.registry import Registry, SampleOutcome

from cli_support import run_chief, spawn_chief
from jsonl_support import read_jsonl, write_jsonl

SHORT = {
    "schedule": {"batch_size": 4, "epochs": 1, "steps": 3},
    "checkpoints": {"every_steps": 0},
    "inline_evals": {"nll_every_steps": 3},
}


def _chief(*args: str) -> object:
    return CliRunner().invoke(cli, list(args))


def _sweep_json(project: Path) -> dict:
    (sweep_dir,) = (project / ".chief" / "sweeps").iterdir()
    return json.loads((sweep_dir / "sweep.json").read_text())


def _suite_project(root: Path) -> Path:
    """A project whose suite has the held-out NLL and a small generative task."""
    suite = {
        "tasks": [
            {
                "name": "heldout_nll",
                "layer": "training",
                "kind": "nll",
                "data": "data/heldout.jsonl",
                "headline_metric": "nll",
            },
            {
                "name": "qa",
                "layer": "product",
                "kind": "jsonl",
                "data": "data/qa.jsonl",
                "grader": "exact",
                "settings": {"max_tokens": 4, "limit": 4},
            },
        ]
    }
    project = make_project(root, **SHORT, eval_suite=suite)
    heldout = read_jsonl(project / "data" / "heldout.jsonl")
    write_jsonl(
        project / "data" / "qa.jsonl",
        [
            {"input": r["messages"][0]["content"], "output": r["messages"][1]["content"]}
            for r in heldout
        ],
    )
    return project


def test_sweep_then_select_end_to_end(tmp_path: Path, engine) -> None:
    project = _suite_project(tmp_path / "p")
    assert (planned := _chief("plan", "-p", str(project))).exit_code == 0, planned.output
    get_lr = json.loads((project / "plan.json").read_text())["learning_rate"]["recommended"][
        "value"
    ]

    result = _chief(
        "sweep",
        "--project",
        str(project),
        "--base-url",
        engine.base_url,
        "--lr-multipliers",
        "0.5,2",
    )
    assert result.exit_code == 0, result.output
    sweep = _sweep_json(project)
    assert sweep["status"] == "finished" and sweep["planned"]["get_lr"] == get_lr
    points = sweep["points"]
    assert [(p["name"], p["learning_rate"], p["lora_rank"]) for p in points] == [
        ("lr0.5x-r4", 0.5e-3, 4),
        ("lr2x-r4", 2e-3, 4),
    ]
    assert all(p["status"] == "finished" and p["steps_done"] == 3 for p in points)
    assert len({p["run_id"] for p in points}) == 2  # one run directory each
    best = min(points, key=lambda p: p["final_val_nll"])
    assert (
        f"rank 4: best LR {best['learning_rate']:.3g} ({best['lr_multiplier']:g}x the plan's 0.001"
        in result.output
    )

    with Registry.open(project / ".chief" / "registry.db") as registry:
        for p in points:
            model = registry.get_model(p["candidate"])
            assert model.config["sweep"] == {
                "id": sweep["sweep_id"],
                "point": p["name"],
                "lr_multiplier": p["lr_multiplier"],
            }
            assert model.optimizer["lr"] == p["learning_rate"] and model.lora.rank == 4
            assert model.training_run_id == p["run_id"] and model.training_step == 3

    selected = _chief(
        "select", "--project", str(project), "--base-url", engine.base_url, "--task", "heldout_nll"
    )
    assert selected.exit_code == 0, selected.output
    scope = f"sweep:{sweep['sweep_id']}"
    with Registry.open(project / ".chief" / "registry.db") as registry:
        (mark,) = registry.selections(scope)
        nll = {
            p["candidate"]: registry.latest_results(p["candidate"])["heldout_nll"]
            .metrics["nll"]
            .value
            for p in points
        }  # the full suite ran on both shortlisted candidates
        assert all(
            registry.latest_results(p["candidate"])["qa"].status == "finished" for p in points
        )
        assert mark.model_ref == min(nll, key=nll.get)  # NLL: lower is better
        assert mark.details["runner_up"] == max(nll, key=nll.get)
        assert registry.get_model(mark.model_ref).status == "candidate"  # marked, not promoted
    assert f"chosen: {mark.model_ref}" in selected.output

    replanned = _chief("plan", "-p", str(project))
    assert replanned.exit_code == 0, replanned.output
    assert f"sweep {sweep['sweep_id']} (finished):" in replanned.output
    assert f"x get_lr's {get_lr:.3g}" in replanned.output

    assert _chief("report", "--project", str(project)).exit_code == 0
    page = (project / "report.html").read_text()
    assert re.search(
        r'<img alt="validation NLL vs learning rate per rank" src="data:image/png;base64,', page
    )
    assert (
        f"chief select chose <b>{mark.model_ref}</b>" in page and "One rank in this sweep" in page
    )


def test_a_tie_goes_to_the_smaller_rank(tmp_path: Path) -> None:
    from tinker_chief.workflows.selection import Candidate, decide

    with Registry.open(tmp_path / "registry.db") as registry:
        runs = []
        for rank, passed in ((32, [True] * 6 + [False] * 4), (4, [True] * 5 + [False] * 5)):
            model = registry.register_model(f"r{rank}", base_model="b")
            run = registry.record_eval(
                model.ref,
                suite_name="s",
                suite_version="v",
                task="qa",
                metrics=[],
                headline_metric="accuracy",
                samples=[SampleOutcome(str(i), float(ok), ok) for i, ok in enumerate(passed)],
            )
            runs.append(
                Candidate(
                    model.ref,
                    f"rank {rank}",
                    "run",
                    10,
                    rank,
                    1e-3,
                    1.0,
                    headline=sum(passed) / len(passed),
                    eval_run_id=run.id,
                )
            )
        chosen, runner_up, test, tie = decide(runs, True, 0.05, registry)
        assert tie and test.p_value >= 0.05  # 6/10 vs 5/10: no evidence
        assert (chosen.lora_rank, runner_up.lora_rank) == (4, 32)
        clear = [
            runs[0],
            Candidate("r4:v1", "rank 4", "run", 10, 4, 1e-3, 1.0, headline=0.0, eval_run_id=None),
        ]
        chosen, _, test, tie = decide(clear, True, 0.05, registry)
        assert (
            tie and test is None and chosen.lora_rank == 4
        )  # no shared samples: no evidence either


def _spawn_sweep(project: Path, engine, *extra: str, apart: bool = False) -> subprocess.Popen:
    return spawn_chief(
        "sweep", "--project", str(project), "--base-url", engine.base_url, *extra, apart=apart
    )


def _points(project: Path) -> dict[str, dict]:
    sweeps = project / ".chief" / "sweeps"
    files = list(sweeps.glob("*/sweep.json")) if sweeps.exists() else []
    try:
        return {p["name"]: p for p in json.loads(files[0].read_text())["points"]} if files else {}
    except ValueError:  # read between the write and the rename of a fresh file
        return {}


def _wait_for_points(
    project: Path, process: subprocess.Popen, ready: Callable[[dict[str, dict]], bool]
) -> None:
    """Polls sweep.json until `ready(points by name)`, failing if the sweep exits first."""
    deadline = time.monotonic() + 240
    while not ready(_points(project)):
        assert process.poll() is None, process.stdout.read()
        assert time.monotonic() < deadline, "timed out waiting for the sweep's points"
        time.sleep(0.05)


def test_ctrl_c_stops_every_run_and_resume_redoes_none_that_finished(
    tmp_path: Path, engine
) -> None:
    # Batch 8 (3 steps) finishes while batch 2 (12 steps) is still training: then Ctrl-C.
    project = make_project(
        tmp_path / "p",
        schedule={"batch_size": 8, "epochs": 1},
        checkpoints={"every_steps": 2},
        inline_evals={"nll_every_steps": 0},
    )
    process = _spawn_sweep(
        project, engine, "--lr-multipliers", "1", "--batch-sizes", "8,2", "--json", apart=True
    )
    _wait_for_points(
        project, process, lambda points: points.get("lr1x-r4-b8", {}).get("status") == "finished"
    )
    process.send_signal(signal.SIGINT)
    output, errors = process.communicate(timeout=120)
    assert process.returncode == ExitCode.INTERRUPTED, (
        errors
    )  # so `chief sweep && chief select` stops
    interrupted = json.loads(output)  # stdout: the one object; the live table went to stderr
    assert interrupted["status"] == "interrupted" and interrupted["file"].endswith("sweep.json")
    points = _points(project)
    assert {p["name"]: p["status"] for p in interrupted["points"]} == {
        n: p["status"] for n, p in points.items()
    }
    short, long = points["lr1x-r4-b8"], points["lr1x-r4-b2"]
    assert long["status"] == "interrupted" and 0 < long["steps_done"] < long["total_steps"]
    runs = project / ".chief" / "runs"
    short_metrics = (runs / short["run_id"] / "metrics.jsonl").read_bytes()

    resumed = _chief(
        "sweep", "-p", str(project), "--base-url", engine.base_url, "--resume", "--json"
    )
    assert resumed.exit_code == 0, resumed.output
    assert json.loads(resumed.stdout)["status"] == "finished"
    points = _points(project)
    assert {p["status"] for p in points.values()} == {"finished"}
    assert sorted(d.name for d in runs.iterdir()) == sorted(
        [short["run_id"], long["run_id"]]
    )  # no new run
    assert (runs / short["run_id"] / "metrics.jsonl").read_bytes() == short_metrics  # not redone
    rows = read_jsonl(runs / long["run_id"] / "metrics.jsonl")
    assert [r["step"] for r in rows if "train/loss" in r] == list(range(1, long["total_steps"] + 1))

    again = _chief("sweep", "--project", str(project), "--base-url", engine.base_url, "--resume")
    assert again.exit_code != 0 and "already finished" in str(again.exception or again.output)

    # One run's checkpoints, without validation data or a suite: the final train loss decides.
    picked = _chief(
        "select",
        "-p",
        str(project),
        "--base-url",
        engine.base_url,
        "--run",
        long["run_id"],
        "--json",
    )
    assert picked.exit_code == 0, picked.output
    final = read_jsonl(runs / long["run_id"] / "checkpoints.jsonl")[-1]
    with Registry.open(project / ".chief" / "registry.db") as registry:
        (mark,) = registry.selections(f"run:{long['run_id']}")
    assert final["final"] and mark.model_ref == final["registry_ref"]
    choice = json.loads(picked.stdout)  # the one object: the choice and its evidence
    assert (choice["scope"], choice["chosen"]) == (f"run:{long['run_id']}", mark.model_ref)
    assert (
        mark.model_ref in [c["ref"] for c in choice["candidates"]] and choice["failed_tasks"] == []
    )


def test_a_killed_sweep_resumes_every_point_in_one_go(tmp_path: Path, engine) -> None:
    # Four points of 8 steps, killed as soon as one has started: the resume, a fresh process as
    # the user's, starts the unfinished points' threads at once, each preparing its data (and so
    # importing transformers) concurrently; none may fail for being imported from many threads.
    project = make_project(
        tmp_path / "p",
        schedule={"batch_size": 3, "epochs": 1},
        checkpoints={"every_steps": 2},
        inline_evals={"nll_every_steps": 0},
    )
    process = _spawn_sweep(project, engine, "--lr-multipliers", "0.5,1,2,4")
    _wait_for_points(project, process, lambda points: any(p["run_id"] for p in points.values()))
    process.kill()  # SIGKILL: no handler runs, sweep.json keeps the points as they were
    process.communicate(timeout=60)
    unfinished = [p for p in _points(project).values() if p["status"] != "finished"]
    assert len(unfinished) >= 3, unfinished  # the resume really starts several points at once

    url = engine.base_url
    resumed = run_chief("sweep", "--project", str(project), "--base-url", url, "--resume")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    points = _points(project)
    assert {name: p["status"] for name, p in points.items()} == dict.fromkeys(points, "finished")
    assert all(p["error"] is None and p["steps_done"] == 8 for p in points.values())
    assert "next: chief select" in resumed.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--lr-multipliers", "0.5,x"], "expected comma-separated numbers like 0.25,0.5,1,2,4"),
        (["--lr-multipliers", "0,1"], "--lr-multipliers: expected positive numbers, got 0"),
        (["--sweep", "sweep-1"], "--sweep ID goes with --resume"),
        (
            ["--ranks", "8,99999"],
            "sweep point lr0.25x-r99999: field `lora.rank`: expected less than or equal to 1024, "
            "got 99999",
        ),
        (
            ["--batch-sizes", "0"],
            "--batch-sizes: expected positive numbers, got 0",
        ),
    ],
)
def test_bad_sweep_flags_are_one_line_errors(tmp_path: Path, args: list[str], message: str) -> None:

    project = make_project(tmp_path / "p")
    result = run_chief(
        "sweep", "--project", str(project), "--base-url", "http://127.0.0.1:9", *args
    )
    assert result.returncode != 0 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not (project / ".chief" / "sweeps").exists() or not any(
        (project / ".chief" / "sweeps").iterdir()
    )


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "nothing to select from: no training run under"),
        (["--sweep", "nope"], "no sweep 'nope' under"),
        (["--run", "run-x"], "no training run 'run-x' under"),
    ],
)
def test_select_refuses_before_reaching_a_backend(
    tmp_path: Path, args: list[str], message: str
) -> None:

    project = make_project(tmp_path / "p")
    result = run_chief(
        "select", "--project", str(project), "--base-url", "http://127.0.0.1:9", *args
    )
    assert result.returncode == 1 and message in result.stderr, (
        result.stderr
    )  # not "cannot reach the backend"
    assert "Traceback" not in result.stderr
