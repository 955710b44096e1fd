"""Sandboxed code finds none of the caller's secrets, in any process it can see.

bubblewrap's own helper is PID 1 inside the sandbox; whatever environment bwrap was started
with stays readable there in /proc/1/environ, whatever `--clearenv` does for the command.
Runs the real bubblewrap sandbox, through `run_python` and through the Inspect `chief` sandbox.
"""

from __future__ import annotations

import shutil

import anyio
import pytest

from tinker_chief.evals.inspect_sandbox import ChiefSandboxEnvironment
from tinker_chief.evals.sandbox import run_python

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap not installed")

SECRET = "tml-caller-secret-9d41c7"
# Reads every process's environment it can list; the secret is assembled at run time so that
# the probe's own source (in PID 1's command line) never holds it.
PROBE = (
    "import os\n"
    "secret = ('tml-caller-' + 'secret-9d41c7').encode()\n"
    "pids = [p for p in os.listdir('/proc') if p.isdigit()]\n"
    "read = [p for p in pids if os.access(f'/proc/{p}/environ', os.R_OK)]\n"
    "leaked = [p for p in read if secret in open(f'/proc/{p}/environ', 'rb').read()]\n"
    "print('pids', len(pids), 'read', len(read), 'leaked', leaked)\n"
)


@pytest.fixture
def caller_secrets(monkeypatch):
    for name in ("TINKER_API_KEY", "HF_TOKEN", "OPENAI_API_KEY"):
        monkeypatch.setenv(name, SECRET)


def assert_no_secret(stdout: str) -> None:
    words = stdout.split()
    pids, read = int(words[1]), int(words[3])
    # bwrap's helper and the probe, both readable: the probe looked at every process there is
    # (its own PID namespace shows nothing of the host's).
    assert 2 <= pids <= 3 and read == pids, stdout
    assert stdout.strip().endswith("leaked []"), stdout


def test_run_python_sees_no_secret_of_the_caller(caller_secrets):
    result = run_python(PROBE)
    assert result.ok, result.stderr
    assert_no_secret(result.stdout)


def test_the_inspect_sandbox_sees_no_secret_of_the_caller(caller_secrets):
    async def scenario() -> str:
        (env,) = (await ChiefSandboxEnvironment.sample_init("t", None, {})).values()
        result = await env.exec(["python", "-c", PROBE])
        assert result.success, result.stderr
        return result.stdout

    assert_no_secret(anyio.run(scenario))
