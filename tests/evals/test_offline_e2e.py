"""`chief eval-offline` and the LLM judge against the real local engine (tiny-random-llama)."""

from __future__ import annotations

import json
import os
import subprocess

from tinker_chief.connection import choose_backend
from tinker_chief.evals.model_sampler import GenerationSettings
from tinker_chief.evals.offline import OfflineConfig, run_offline

from cli_support import CHIEF_COMMAND

TINY = "tiny-random-llama"


def test_cli_json_prints_one_object_and_writes_records(engine, qa_file, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            *CHIEF_COMMAND,
            "eval-offline",
            "--base-model",
            TINY,
            "--data",
            str(qa_file),
            "--grader",
            "numeric",
            "--max-tokens",
            "4",
            "--base-url",
            engine.base_url,
            "--output",
            str(out),
            "--json",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "TINKER_TELEMETRY": "0"},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)  # the whole stdout is exactly one JSON object
    assert result["total"] == 5 and result["n"] + result["unscored"] + result["errors"] == 5
    assert 0.0 <= result["ci_low"] <= result["accuracy"] <= result["ci_high"] <= 1.0
    assert result["backend"] == "local" and result["settings"]["max_tokens"] == 4
    from tinker_chief.engine.server.launcher import engine_stats

    assert (
        result["engine_precision"]
        == engine_stats(engine.base_url)["precision"]
        in ("float32", "bfloat16-autocast")
    )
    records = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert [r["id"] for r in records] == [f"q{i}" for i in range(5)]
    assert all(
        r["response"] is not None and r["target"] and r["prompt"][0]["role"] == "user"
        for r in records
    )
    assert all(r["extra"]["output_tokens"] <= 4 for r in records)
    # What it cost: every completion token the sampler returned, and each prompt prefilled once.
    assert result["tokens"]["sample/tokens"] == sum(r["extra"]["output_tokens"] for r in records)
    assert result["tokens"]["prefill/tokens"] >= 5


def test_cli_bad_data_fails_before_starting_anything(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"input": "q"}\n')
    proc = subprocess.run(
        [
            *CHIEF_COMMAND,
            "eval-offline",
            "--base-model",
            TINY,
            "--data",
            str(bad),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 1 and proc.stdout == ""
    assert 'bad.jsonl:1: field "output"' in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / ".chief").exists()


def test_unparseable_judge_verdicts_are_counted_not_dropped(engine, qa_file, tmp_path):
    # The tiny random model cannot produce "GRADE: C/I", so every verdict is unparseable.
    config = OfflineConfig(
        model=TINY,
        data=qa_file,
        grader="llm_judge:max_tokens=8",
        judge_model=TINY,
        settings=GenerationSettings(max_tokens=4),
        output_dir=tmp_path / "j",
    )
    result = run_offline(config, choose_backend(base_url=engine.base_url))
    assert result.metrics["total"] == 5
    assert result.metrics["unscored"] + result.metrics["n"] == 5 and result.metrics["unscored"] >= 1
    assert all(
        "unparseable judge verdict" in r.explanation for r in result.records if r.correct is None
    )
