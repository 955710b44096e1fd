"""The `tinker/<model>` Inspect provider against the real engine: Python API, Inspect's CLI,
logs."""

from __future__ import annotations

import glob
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tinker_chief.errors import EvalError
from tinker_chief.evals.inspect_runner import read_inspect_log, run_inspect_task
from tinker_chief.evals.inspect_tasks import file_version

TINY = "tiny-random-llama"


def test_python_api_runs_jsonl_task_with_settings_and_logprobs(engine, qa_file, tmp_path):
    from inspect_ai import eval as inspect_eval

    from tinker_chief.evals.inspect_runner import result_from_log
    from tinker_chief.evals.inspect_tasks import jsonl_task

    logs = inspect_eval(
        jsonl_task(data=str(qa_file), scorer="includes"),
        model=f"tinker/{TINY}",
        model_base_url=engine.base_url,
        log_dir=str(tmp_path / "logs"),
        display="none",
        max_tokens=5,
        temperature=0.0,
        seed=1,
        logprobs=True,
        max_connections=4,
    )
    result = result_from_log(logs[0])
    assert len(result.samples) == 5 and set(result.samples.values()) <= {0.0, 1.0}
    assert result.task_version == file_version(qa_file)
    assert result.settings["generate_config"]["max_tokens"] == 5
    choice = logs[0].samples[0].output.choices[0]
    assert choice.logprobs is not None and 1 <= len(choice.logprobs.content) <= 5
    assert all(lp.logprob <= 0.0 for lp in choice.logprobs.content)
    assert logs[0].samples[0].output.usage.output_tokens <= 5
    # The result's cost is the log's usage: each sample's prompt tokens and its completion tokens.
    usages = [sample.output.usage for sample in logs[0].samples]
    assert result.tokens == {
        "prefill/tokens": sum(u.input_tokens for u in usages),
        "sample/tokens": sum(u.output_tokens for u in usages),
    }
    assert 0 < result.tokens["sample/tokens"] <= 5 * 5


def test_inspect_cli_runs_staged_published_benchmark_on_the_engine(engine, tmp_path, monkeypatch):
    # What the planner's scripts/run_inspect_evals.sh does: Inspect's own CLI, the unmodified
    # inspect_evals task on rows staged into a private datasets cache, our provider, offline.
    import datasets.config

    from tinker_chief.evals.hub_data import stage, task_data

    from jsonl_support import write_jsonl

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf")
    data = write_jsonl(
        tmp_path / "gsm8k.jsonl",
        [{"question": f"{i} + 1 = ?", "answer": f"#### {i + 1}"} for i in range(3)],
    )
    staged = stage(task_data("gsm8k", {"fewshot": 0}), data)
    log_dir = tmp_path / "cli_logs"
    proc = subprocess.run(
        [
            str(Path(sys.executable).with_name("inspect")),
            "eval",
            "inspect_evals/gsm8k",
            "-T",
            "fewshot=0",
            "--model",
            f"tinker/{TINY}",
            "--model-base-url",
            engine.base_url,
            "--limit",
            "2",
            "--max-tokens",
            "4",
            "--log-dir",
            str(log_dir),
            "--display",
            "none",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={
            **os.environ,
            "TINKER_TELEMETRY": "0",
            "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_CACHE": str(tmp_path / "hf"),
        },
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (log,) = glob.glob(str(log_dir / "*.eval"))
    result = read_inspect_log(log)
    assert result.model == f"tinker/{TINY}" and len(result.samples) == 2
    assert result.task == "inspect_evals/gsm8k" and staged.rows == 3
    assert result.task_version == str(task_version_of("inspect_evals/gsm8k"))


def task_version_of(ref):
    from inspect_ai._eval.registry import task_create

    return task_create(ref, fewshot=0).version


def test_failed_task_raises_even_though_inspect_returns_normally(engine, qa_file, tmp_path):
    with pytest.raises(EvalError, match="ended with status `error`"):
        run_inspect_task(
            "tinker_chief/jsonl_task",
            "no-such-model",
            tmp_path / "logs",
            task_args={"data": str(qa_file)},
            base_url=engine.base_url,
            max_tokens=4,
        )
