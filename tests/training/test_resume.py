"""Crash and interrupt: `chief train` killed with SIGKILL resumes from its last checkpoint, runs
every batch exactly once, and ends with the same weights as an uninterrupted run; Ctrl-C
(SIGINT) saves a checkpoint and exits 130, and `--resume` finishes the run. Real subprocesses,
real signals, real engine."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

from click.testing import CliRunner
from safetensors.torch import load_file

from tests.training.conftest import make_project, only_run
from tinker_chief.cli.main import cli
from tinker_chief.exit_codes import ExitCode

from cli_support import run_chief, spawn_chief
from jsonl_support import read_jsonl

LONG = {
    "schedule": {"batch_size": 4, "epochs": 2},
    "checkpoints": {"every_steps": 3},
    "inline_evals": {"nll_every_steps": 0},
}  # 12 steps: a kill after the first checkpoint lands mid-run
TOTAL = 12


def _spawn(project: Path, engine, *extra: str, apart: bool = False) -> subprocess.Popen:
    return spawn_chief(
        "train", "--project", str(project), "--base-url", engine.base_url, *extra, apart=apart
    )


def _wait_for(predicate, process: subprocess.Popen, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert process.poll() is None, f"chief train exited early:\n{process.stdout.read()}"
        assert time.monotonic() < deadline, "timed out waiting for the run"
        time.sleep(0.05)


def _rows(project: Path, name: str) -> list[dict]:
    runs = project / ".chief" / "runs"
    files = list(runs.glob(f"*/{name}")) if runs.exists() else []
    return read_jsonl(files[0]) if files else []


def _adapter(engine, tinker_path: str) -> dict:
    run, _, name = tinker_path.removeprefix("tinker://").partition("/sampler_weights/")
    weights = (
        Path(engine.state_dir)
        / "runs"
        / run
        / "sampler_weights"
        / name
        / "adapter_model.safetensors"
    )
    return load_file(str(weights))


def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path: Path, engine) -> None:
    reference = make_project(tmp_path / "reference", **LONG)
    assert (
        CliRunner()
        .invoke(cli, ["train", "--project", str(reference), "--base-url", engine.base_url])
        .exit_code
        == 0
    )

    crashed = make_project(tmp_path / "crashed", **LONG)
    process = _spawn(crashed, engine)
    _wait_for(lambda: any(c["step"] >= 3 for c in _rows(crashed, "checkpoints.jsonl")), process)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    run = only_run(crashed)
    assert json.loads((run / "run.json").read_text())["status"] == "running"  # really died mid-run
    killed_at = read_jsonl(run / "checkpoints.jsonl")[-1]["step"]
    assert killed_at < TOTAL

    result = CliRunner().invoke(
        cli, ["train", "--project", str(crashed), "--base-url", engine.base_url, "--resume"]
    )
    assert result.exit_code == 0, result.output
    assert f"resuming at step {killed_at}" in result.output

    ours, theirs = (read_jsonl(only_run(p) / "metrics.jsonl") for p in (crashed, reference))
    steps = [r["step"] for r in ours if "train/loss" in r]
    assert steps == list(
        range(1, TOTAL + 1)
    )  # every batch exactly once: none replayed, none skipped
    for mine, ref in zip(
        [r for r in ours if "train/loss" in r],
        [r for r in theirs if "train/loss" in r],
        strict=True,
    ):
        assert abs(mine["train/loss"] - ref["train/loss"]) < 1e-5, (mine, ref)
        assert mine["train/tokens"] == ref["train/tokens"]  # the same batch at the same step
    final = read_jsonl(run / "checkpoints.jsonl")[-1]
    assert final["final"] and final["step"] == TOTAL
    reference_path = read_jsonl(only_run(reference) / "checkpoints.jsonl")[-1]["sampler_path"]
    got, want = _adapter(engine, final["sampler_path"]), _adapter(engine, reference_path)
    assert got.keys() == want.keys() and len(got) > 0
    for key in want:
        assert (got[key] - want[key]).abs().max().item() < 1e-6, key


def test_ctrl_c_saves_a_checkpoint_exits_130_and_resume_finishes(tmp_path: Path, engine) -> None:
    project = make_project(tmp_path, **LONG)
    process = _spawn(project, engine, "--json", apart=True)
    _wait_for(lambda: any("train/loss" in r for r in _rows(project, "metrics.jsonl")), process)
    process.send_signal(signal.SIGINT)
    output, errors = process.communicate(timeout=120)
    # 130, not 0: `chief train && chief eval ...` must not go on with a half-trained model.
    assert process.returncode == ExitCode.INTERRUPTED, errors
    assert "chief train --resume" in errors  # the progress and the hint go to stderr with --json
    run = only_run(project)
    status = json.loads((run / "run.json").read_text())
    last = read_jsonl(run / "checkpoints.jsonl")[-1]
    assert status["status"] == "interrupted" and last["step"] == status["steps_done"] < TOTAL
    stopped = json.loads(output)  # stdout is the one object and nothing else
    assert (stopped["status"], stopped["run_id"]) == ("interrupted", run.name)
    assert (stopped["steps_done"], stopped["total_steps"]) == (status["steps_done"], TOTAL)

    resumed = run_chief(
        "train", "-p", str(project), "--base-url", engine.base_url, "--resume", "--json"
    )
    assert resumed.returncode == ExitCode.OK, resumed.stderr
    finished = json.loads(resumed.stdout)
    final = read_jsonl(run / "checkpoints.jsonl")[-1]
    assert (finished["status"], finished["run_id"], finished["steps_done"]) == (
        "finished",
        run.name,
        TOTAL,
    )
    assert (
        finished["candidate"] == final["registry_ref"]
        and finished["sampler_path"] == final["sampler_path"]
    )
    assert finished["tokens_per_s"] > 0 and finished["precision"] == "float32"
    steps = [r["step"] for r in read_jsonl(run / "metrics.jsonl") if "train/loss" in r]
    assert steps == list(range(1, TOTAL + 1))  # continued where Ctrl-C stopped it
