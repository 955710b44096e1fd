"""Offline benchmark builders from staged fixture files (each in its hub dataset's schema).

The model here is Inspect's own `mockllm/model` with fixed outputs: these tests check data
mapping, prompting, scoring and the sandboxed code scorer, not a model, so no engine is needed.
"""

from __future__ import annotations

import shutil

import pytest
from inspect_ai import eval as inspect_eval
from inspect_ai.model import ModelOutput, get_model

from tinker_chief.errors import EvalError
from tinker_chief.evals.benchmarks import BUILDER_VERSION, inspect_task_for
from tinker_chief.evals.inspect_runner import result_from_log
from tinker_chief.evals.suite import EvalTask

from evals_support import write_jsonl


def staged(tmp_path, stem, rows):
    write_jsonl((tmp_path / ".chief" / "benchmarks").mkdir(parents=True, exist_ok=True) or
                tmp_path / ".chief" / "benchmarks" / f"{stem}.jsonl", rows)


@pytest.fixture(autouse=True)
def no_tiktoken(monkeypatch):
    """Inspect's mock model counts tokens with tiktoken, which downloads its vocabulary."""
    from inspect_ai.model._providers.mockllm import MockLLM

    async def count(self, text):
        return len(text.split())

    monkeypatch.setattr(MockLLM, "count_text_tokens", count)


def run(tmp_path, task_name, outputs):
    task = EvalTask(name="b", layer="benchmark", kind="inspect", inspect_task=f"inspect_evals/{task_name}")
    built, _, _ = inspect_task_for(task, tmp_path)
    model = get_model("mockllm/model", custom_outputs=[ModelOutput.from_content("mockllm/model", o) for o in outputs])
    logs = inspect_eval(built, model=model, log_dir=str(tmp_path / "logs"), display="none", max_connections=1)
    return result_from_log(logs[0])


def test_gsm8k_schema_and_numeric_match(tmp_path):
    staged(tmp_path, "gsm8k", [{"question": "2 apples + 3 apples?", "answer": "2+3=5\n#### 5"},
                               {"question": "1,000 + 234?", "answer": "#### 1,234"}])
    result = run(tmp_path, "gsm8k", ["So 5.\nANSWER: 5", "ANSWER: 1200"])
    assert result.metrics["accuracy"] == 0.5
    assert result.task_version.startswith(BUILDER_VERSION + "@")


def test_mmlu_and_arc_and_hellaswag_schemas(tmp_path):
    staged(tmp_path, "mmlu", [{"question": "2+2?", "subject": "math", "choices": ["3", "4", "5", "6"], "answer": 1}])
    staged(tmp_path, "arc_easy", [{"question": "Sky color?",
                                   "choices": {"text": ["green", "blue"], "label": ["1", "2"]}, "answerKey": "2"}])
    staged(tmp_path, "hellaswag", [{"ctx": "He opens the door and", "endings": ["walks in", "x", "y", "z"],
                                    "label": "0"}])
    assert run(tmp_path, "mmlu_0_shot", ["ANSWER: B"]).metrics["accuracy"] == 1.0
    assert run(tmp_path, "arc_easy", ["ANSWER: B"]).metrics["accuracy"] == 1.0
    assert run(tmp_path, "hellaswag", ["ANSWER: C"]).metrics["accuracy"] == 0.0


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap not installed")
def test_humaneval_and_mbpp_run_code_in_the_sandbox(tmp_path):
    staged(tmp_path, "humaneval", [
        {"task_id": "HumanEval/0", "prompt": "def add(a, b):\n    \"\"\"Add.\"\"\"\n",
         "canonical_solution": "    return a + b\n",
         "test": "def check(f):\n    assert f(2, 3) == 5\n", "entry_point": "add"},
        {"task_id": "HumanEval/1", "prompt": "def sub(a, b):\n", "canonical_solution": "    return a - b\n",
         "test": "def check(f):\n    assert f(3, 2) == 1\n", "entry_point": "sub"},
    ])
    secret = tmp_path / "secret.txt"
    secret.write_text("x")
    evil = f"```python\ndef sub(a, b):\n    return len(open({str(secret)!r}).read())\n```"
    result = run(tmp_path, "humaneval", ["```python\ndef add(a, b):\n    return a + b\n```", evil])
    assert result.samples == {"HumanEval/0": 1.0, "HumanEval/1": 0.0}
    staged(tmp_path, "mbpp", [{"task_id": 2, "text": "Write a function double(x).", "code": "def double(x): return 2*x",
                               "test_list": ["assert double(2) == 4"]}])
    assert run(tmp_path, "mbpp", ["def double(x):\n    return x * 2\n"]).metrics["accuracy"] == 1.0


def test_unstaged_or_unsupported_benchmarks_fail_with_a_fix(tmp_path):
    task = EvalTask(name="b", layer="benchmark", kind="inspect", inspect_task="inspect_evals/gsm8k")
    with pytest.raises(EvalError, match=r"stage rows in the gsm8k hub schema at .*gsm8k.jsonl"):
        inspect_task_for(task, tmp_path)
    task = EvalTask(name="b", layer="benchmark", kind="inspect", inspect_task="inspect_evals/gaia")
    with pytest.raises(EvalError, match="no offline builder"):
        inspect_task_for(task, tmp_path)
