"""`chief train` on the tiny model through the real SDK and engine: logs, checkpoints, registry
lineage, and the bad inputs that must fail before any training starts."""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path

from click.testing import CliRunner

from tests.training.conftest import make_project, only_run
from tinker_chief.cli.main import cli
from tinker_chief.registry import Registry

from jsonl_support import read_jsonl, write_jsonl


def _train(*args: str) -> object:
    return CliRunner().invoke(cli, ["train", *args])


def test_sft_run_logs_checkpoints_and_registers_lineage(tmp_path: Path, engine) -> None:
    project = make_project(tmp_path)
    result = _train("--project", str(project), "--base-url", engine.base_url)
    assert result.exit_code == 0, result.output
    assert "finished: 6/6 steps" in result.output and "candidate: tiny:v3" in result.output

    run = only_run(project)
    rows = read_jsonl(run / "metrics.jsonl")
    train_rows = [r for r in rows if "train/loss" in r]
    assert [r["step"] for r in train_rows] == [1, 2, 3, 4, 5, 6]
    assert all(math.isfinite(r["train/loss"]) and r["train/tokens"] > 0 for r in train_rows)
    # The summary: trained tokens over step time, and the precision the engine computed in.
    tokens = sum(r["train/tokens"] for r in train_rows)
    seconds = sum(r["time/step_s"] for r in train_rows)
    line = r"speed: ([\d,]+) tok/s \(([\d,]+) train tokens in [\d.]+ s\); precision: float32\n"
    speed = re.search(line, result.output)
    assert speed is not None, result.output
    rate, counted = (int(group.replace(",", "")) for group in speed.groups())
    assert counted == tokens and abs(rate - tokens / seconds) <= 1
    assert [r["step"] for r in rows if "val/nll" in r] == [0, 3, 6]  # baseline, schedule, final
    checkpoints = read_jsonl(run / "checkpoints.jsonl")
    assert [c["step"] for c in checkpoints] == [2, 4, 6] and checkpoints[-1]["final"]
    status = json.loads((run / "run.json").read_text())
    assert status["status"] == "finished" and status["candidate"] == "tiny:v3"
    assert status["engine_precision"] == "float32"  # the session engine's, as its stats say

    with Registry.open(project / ".chief" / "registry.db", create=False) as registry:
        models = registry.list_models()
    assert [(m.ref, m.training_step, m.status) for m in models] == [
        ("tiny:v1", 2, "candidate"),
        ("tiny:v2", 4, "candidate"),
        ("tiny:v3", 6, "candidate"),
    ]
    final = models[-1]
    assert (
        final.tinker_path == checkpoints[-1]["sampler_path"] and final.training_run_id == run.name
    )
    assert final.config_hash == status["config_hash"] and final.lora.rank == 4
    train_sha = hashlib.sha256((project / "data" / "train.jsonl").read_bytes()).hexdigest()
    assert final.data.files[0].sha256 == train_sha and final.data.examples == 24


def test_missing_key_for_cloud_is_refused_before_anything_starts(
    tmp_path: Path, monkeypatch
) -> None:
    # Tinker's cloud is never called: the command must refuse before opening any connection.
    monkeypatch.delenv("TINKER_API_KEY", raising=False)
    project = make_project(tmp_path)
    result = _train("--project", str(project), "--backend", "tinker")
    assert result.exit_code != 0 and "TINKER_API_KEY" in str(result.exception)
    assert not (project / ".chief").exists()


def test_unreachable_backend_is_a_clear_error(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    result = _train("--project", str(project), "--base-url", "http://127.0.0.1:9")
    assert "cannot reach the backend at http://127.0.0.1:9 (from --base-url)" in str(
        result.exception
    )
    assert not (project / ".chief" / "runs").exists()


def test_plan_that_does_not_match_the_data_fails_naming_file_and_line(
    tmp_path: Path, engine
) -> None:
    project = make_project(tmp_path, recipe="dpo")  # DPO plan, but the data is prompt/answer pairs
    result = _train("--project", str(project), "--base-url", engine.base_url)
    message = str(result.exception)
    assert "train.jsonl:1" in message and "preferences" in message
    assert not (project / ".chief" / "runs").exists()


def test_bad_line_in_data_names_file_line_and_field(tmp_path: Path, engine) -> None:
    project = make_project(tmp_path)
    write_jsonl(
        project / "data" / "train.jsonl",
        [{"input": "q", "output": "a"}, {"input": "q", "output": 7}],
    )
    result = _train("--project", str(project), "--base-url", engine.base_url)
    assert 'train.jsonl:2: field "output"' in str(result.exception)


def test_model_the_backend_does_not_serve_is_refused(engine) -> None:
    from tinker_chief.connection import choose_backend, open_connection
    from tinker_chief.errors import ConfigurationError

    connection = open_connection(
        choose_backend(base_url=engine.base_url), api_key=engine.api_key_for_clients
    )
    try:
        connection.check_serves("no-such-model")
    except ConfigurationError as exc:
        assert "no-such-model" in str(exc) and "tiny-random-llama" in str(exc).lower()
    else:
        raise AssertionError("an unserved model was accepted")


def test_a_judge_model_the_backend_does_not_serve_is_refused_before_the_run_is_written(
    tmp_path: Path, engine
) -> None:
    # Before, the run directory (run.json `running`) was written and the judge failed after.
    project = make_project(
        tmp_path, recipe="rl", rl={"grader": "llm_judge", "judge_model": "no-such-judge"}
    )
    write_jsonl(project / "data" / "train.jsonl", [{"prompt": "Say hi", "answer": "hi"}] * 4)
    write_jsonl(project / "data" / "heldout.jsonl", [{"prompt": "Say yo", "answer": "yo"}] * 2)
    result = _train("--project", str(project), "--base-url", engine.base_url)
    assert result.exit_code != 0
    refused = "the judge model ([rl] judge_model) 'no-such-judge' is not served by"
    assert refused in str(result.exception)
    assert not (project / ".chief" / "runs").exists() or not any(
        (project / ".chief" / "runs").iterdir()
    )
