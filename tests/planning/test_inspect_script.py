"""The generated scripts/run_inspect_evals.sh: runnable as is, and it fails when a task's log
failed.

`inspect eval` exits 0 even when a task errors, so the script reads each log's status. Here the
`inspect` command is replaced (via the script's INSPECT variable) by a stand-in that runs a real,
tiny Inspect eval (a fixed answer, no model call, no network, no Tinker) into the requested
log directory, succeeding or erroring depending on the task name; the script must report the
failure and exit 1. Inspect Evals tasks run unmodified as `inspect_evals/<name>`; code tasks get
`--sandbox $CODE_SANDBOX`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tinker_chief.planning.project_files import init_project

from jsonl_support import write_jsonl

FAKE_INSPECT = r"""#!/usr/bin/env bash
# Stand-in for `inspect`: records its arguments, then writes a real Inspect log with mockllm.
echo "$*" >> "$ARGS_LOG"
task="$2"; log_dir=""
while (($#)); do [[ "$1" == "--log-dir" ]] && log_dir="$2"; shift; done
exec "$PYTHON" - "$task" "$log_dir" <<'PY'
import sys
from inspect_ai import Task, eval
from inspect_ai.dataset import Sample
from inspect_ai.scorer import match
from inspect_ai.model import ModelOutput
from inspect_ai.solver import solver

@solver
def answer():
    async def solve(state, generate):  # no model call: mockllm's token counting needs the network
        state.output = ModelOutput.from_content("mockllm/model", "hi")
        return state
    return solve

@solver
def explode():
    async def solve(state, generate):
        raise RuntimeError("task failed on purpose")
    return solve

task, log_dir = sys.argv[1], sys.argv[2]
solver_ = explode() if task.endswith("/mbpp") else answer()
eval(Task(dataset=[Sample(input="hi", target="hi")], solver=solver_, scorer=match()),
     model="mockllm/model", log_dir=log_dir, display="none")
PY
"""


def test_script_runs_tasks_with_settings_and_reports_failed_logs(tmp_path):
    train = write_jsonl(
        tmp_path / "train.jsonl", [{"input": f"f{i}()", "output": str(i + 1)} for i in range(20)]
    )
    project = init_project(
        tmp_path / "proj", use_case="code", base_model="tiny-random-llama", train=train
    )
    fake = tmp_path / "fake-inspect"
    fake.write_text(FAKE_INSPECT)
    fake.chmod(0o755)
    env = {
        **os.environ,
        "INSPECT": str(fake),
        "PYTHON": sys.executable,
        "ARGS_LOG": str(tmp_path / "args.txt"),
        "MODEL_PATH": "tinker://run-1/sampler_weights/final",
        "INSPECT_LOG_LEVEL": "warning",
        "CODE_SANDBOX": "chief",
    }
    result = subprocess.run(
        [str(project.root / "scripts" / "run_inspect_evals.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "== humaneval: ok" in result.stdout
    assert "== mbpp: FAILED" in result.stderr and "failed tasks: mbpp" in result.stderr
    assert "== apps: ok" in result.stdout
    calls = Path(tmp_path / "args.txt").read_text().splitlines()
    assert calls[0].startswith(
        "eval inspect_evals/humaneval --temperature 0.0 --max-tokens 512 --seed 0 --limit 100 "
        "--sandbox chief --model tinker/tinker://run-1/sampler_weights/final "
        "--log-dir logs/inspect/humaneval/"
    )
    assert calls[1].startswith("eval inspect_evals/mbpp ") and calls[2].startswith(
        "eval inspect_evals/apps "
    )
    assert len(calls) == 3
    # The project's renderer for its base model: Inspect renders as `chief eval` does.
    assert all("-M renderer=chatml -M renderer_for=tiny-random-llama" in call for call in calls)
