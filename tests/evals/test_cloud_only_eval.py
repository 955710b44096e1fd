"""`chief eval` and `chief eval-offline` of a model that runs only on Tinker's cloud, with no
TINKER_API_KEY: one line saying where the model runs and how to get there, before any
engine starts, never a traceback or a table of failed tasks."""

from __future__ import annotations

import json

from cli_support import assert_one_line_error, run_chief

QWEN3_8B = "Qwen/Qwen3-8B"
# No key and no URL anywhere: the backend choice falls through to a local engine.
NO_BACKEND = {
    "TINKER_API_KEY": None,
    "CHIEF_ENGINE_URL": None,
    "TINKER_BASE_URL": None,
    "HF_HUB_OFFLINE": "1",
}
WHERE = (f"model {QWEN3_8B} runs on Tinker's cloud only", "--backend tinker", "TINKER_API_KEY")


def test_eval_offline_of_a_cloud_model_without_a_key_says_where_it_runs(tmp_path):
    data = tmp_path / "qa.jsonl"
    data.write_text(json.dumps({"input": "2+2?", "output": "4"}) + "\n")
    result = run_chief(
        "eval-offline", "--base-model", QWEN3_8B, "--data", str(data), cwd=tmp_path, env=NO_BACKEND
    )
    assert_one_line_error(result, *WHERE)
    assert not (tmp_path / ".chief" / "engine").exists()  # refused before starting an engine


def test_eval_of_a_cloud_model_project_without_a_key_says_where_it_runs(tmp_path):
    train = tmp_path / "train.jsonl"
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"{i}+1?"},
                {"role": "assistant", "content": str(i + 1)},
            ]
        }
        for i in range(30)
    ]
    train.write_text("".join(json.dumps(row) + "\n" for row in rows))
    env = {
        **NO_BACKEND,
        "HF_HUB_CACHE": str(tmp_path / "empty-hub"),
    }  # planned with the proxy tokenizer
    made = run_chief(
        "init",
        "-p",
        str(tmp_path / "q8"),
        "--use-case",
        "math",
        "-m",
        QWEN3_8B,
        "--train",
        str(train),
        env=env,
    )
    assert made.returncode == 0, made.stderr
    result = run_chief("eval", QWEN3_8B, "--no-record", cwd=tmp_path / "q8", env=env)
    assert_one_line_error(result, *WHERE)
    assert not (tmp_path / "q8" / ".chief" / "engine").exists()
