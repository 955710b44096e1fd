"""A file name that cannot be a file in the sandbox is refused when it is given, never passed to
bwrap: there it would stop every later command of the sample from starting.

Runs the real bubblewrap sandbox, through the Inspect `chief` sandbox and through `run_python`.
"""

from __future__ import annotations

import shutil

import anyio
import pytest

from tinker_chief.errors import EvalError
from tinker_chief.evals.inspect_sandbox import ChiefSandboxEnvironment
from tinker_chief.evals.sandbox import run_python

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap not installed")

REFUSED = [
    ("", IsADirectoryError, "is the sandbox directory itself"),
    (".", IsADirectoryError, "is the sandbox directory itself"),
    ("/sandbox/", IsADirectoryError, "is the sandbox directory itself"),
    ("a\0b", ValueError, "embedded null byte"),
    (".tmp", IsADirectoryError, "is the directory behind /tmp"),
    ("x" * 256, PermissionError, "longer than 255 bytes"),
    # `data` already holds a written file: it is a directory, and data/in.txt is a file.
    ("data", IsADirectoryError, "is a directory: it holds data/in.txt"),
    ("data/in.txt/more", PermissionError, "inside data/in.txt, which is a file"),
    ("../outside", PermissionError, "is outside the sandbox directory"),
    ("/etc/passwd", PermissionError, "is outside the sandbox directory"),
    ("bad\ud800name", ValueError, "is not valid text for a file name"),
]


@pytest.mark.parametrize(("name", "error", "message"), REFUSED)
def test_the_inspect_sandbox_refuses_a_bad_name_and_keeps_working(name, error, message):
    async def scenario() -> None:
        (env,) = (await ChiefSandboxEnvironment.sample_init("t", None, {})).values()
        await env.write_file("data/in.txt", "kept")
        with pytest.raises(error, match=message):
            await env.write_file(name, "refused")
        probe = "import os; print(open('data/in.txt').read(), sorted(os.listdir()))"
        result = await env.exec(["python", "-c", probe])
        assert result.success, result.stderr
        assert result.stdout.strip() == "kept ['.tmp', 'data']"

    anyio.run(scenario)


def test_the_inspect_sandbox_refuses_text_it_cannot_write_and_keeps_working():
    async def scenario() -> None:
        (env,) = (await ChiefSandboxEnvironment.sample_init("t", None, {})).values()
        with pytest.raises(UnicodeEncodeError):
            await env.write_file("lone.txt", "half a surrogate pair: \ud800")
        result = await env.exec(["python", "-c", "print('still runs')"])
        assert result.success and result.stdout.strip() == "still runs", result.stderr

    anyio.run(scenario)


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"a\0b": "x"}, "embedded null byte"),
        ({"lib": "x", "lib/helper.py": "X = 1"}, "inside lib, which is a file"),
        ({".tmp": "x"}, "the directory behind /tmp"),
    ],
)
def test_run_python_refuses_a_bad_name_before_starting(files, message):
    with pytest.raises(EvalError, match=message):
        run_python("print('ran')", files=files)
