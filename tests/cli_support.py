"""`chief` run as a user runs it (a subprocess of the real entry point), the one-line error
check, and the small project `chief init` makes for eval tests."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

# `chief` as a user runs it: the real entry point, in a process of its own.
CHIEF_COMMAND = [sys.executable, "-m", "tinker_chief.cli.main"]


def run_chief(
    *args: str,
    cwd: Path | None = None,
    wrap: list[str] | None = None,
    timeout: float = 600,
    env: dict[str, str | None] | None = None,
) -> subprocess.CompletedProcess:
    """`wrap` prefixes the command (e.g. bwrap for a read-only view); `env` adds variables to this
    process's environment (None removes one); the terminal is wide enough that rich wraps no line
    a test looks for."""
    environment = {**os.environ, "TINKER_TELEMETRY": "0", "COLUMNS": "400", **(env or {})}
    return subprocess.run(
        [*(wrap or []), *CHIEF_COMMAND, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env={name: value for name, value in environment.items() if value is not None},
    )


def spawn_chief(*args: str, apart: bool = False) -> subprocess.Popen:
    """`chief ARGS` started, not waited for (to signal it mid-run): unbuffered, stdout and stderr
    merged into one text pipe, or with `apart` in two (to read `--json`'s stdout alone)."""
    environment = {**os.environ, "PYTHONUNBUFFERED": "1", "TINKER_TELEMETRY": "0"}
    return subprocess.Popen(
        [*CHIEF_COMMAND, *args],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE if apart else subprocess.STDOUT,
        text=True,
    )


def chief_in_process(capsys: Any, *args: str) -> tuple[object, str, str]:
    """`chief ARGS` through its real entry point in this process: (exit code, stdout, stderr)."""
    from tinker_chief.cli.main import main

    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(
    result: subprocess.CompletedProcess, *fragments: str, pattern: str | None = None
) -> None:
    """A non-zero exit with exactly one `Error: ...` line on stderr holding every fragment (and
    matching `pattern`), and no traceback."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    if pattern is not None:
        assert re.search(pattern, lines[0]), (pattern, lines[0])


def init_math_project(tmp_path: Path, rows: int = 20) -> Path:
    """`chief init` (in this process) of a math project on the tiny model at `tmp_path/proj`,
    from `rows` "What is i plus 2?" chats."""
    from tinker_chief.cli.main import main

    from jsonl_support import write_jsonl

    chats = [
        {
            "messages": [
                {"role": "user", "content": f"What is {i} plus 2?"},
                {"role": "assistant", "content": str(i + 2)},
            ]
        }
        for i in range(rows)
    ]
    train = write_jsonl(tmp_path / "train.jsonl", chats)
    project = tmp_path / "proj"
    init = ["init", "-p", str(project), "--use-case", "math", "-m", "tiny-random-llama"]
    main([*init, "--train", str(train)])
    return project
