"""Inspect sandbox environment `chief`: each `exec` runs in chief's bubblewrap sandbox.

Registered through the `inspect_ai` entry point (`_inspect_registry.py`), so any Inspect task
can use it: `inspect eval inspect_evals/humaneval --sandbox chief`, or `eval(..., sandbox="chief")`.
chief picks it for code tasks when no Docker daemon answers (`code_sandbox()`); without
bubblewrap the task is refused at start, never run unsandboxed.

Each `exec` gets a fresh sandbox with the limits of `sandbox.SandboxLimits` (no network,
read-only system, its own PID namespace, memory/CPU/process/output limits, the whole process
tree killed at the timeout; the timeout is the caller's, at most `MAX_TIMEOUT_S`). Files given
to `write_file` are kept per sample and copied into every `exec`; what a command writes inside
the sandbox does not outlive that command (enough for unit-test scorers such as HumanEval's,
MBPP's and APPS's, which run one `python -c` per sample). A name no file in the sandbox can
have (empty, `.`, a NUL byte, a directory of written files, ...) is refused by `write_file` with
the error a file system would raise, and the sample's later commands still run. Only the default
user is supported.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import posixpath
import shutil
import subprocess
from collections.abc import Iterable
from typing import Literal, overload

import anyio
from inspect_ai.util import (
    ExecResult,
    SandboxEnvironment,
    SandboxEnvironmentConfigType,
    SandboxEnvironmentType,
    SandboxUserUnsupportedError,
    sandboxenv,
)
from inspect_ai.util import concurrency as concurrency_limit

from tinker_chief.errors import EvalError
from tinker_chief.evals.sandbox import (
    SandboxFileNameError,
    SandboxLimits,
    bwrap_path,
    run_command,
    sandbox_file_name,
)

SANDBOX_NAME = "chief"
MAX_TIMEOUT_S = 60
DEFAULT_TIMEOUT_S = 30
# Commands running at once, over all samples: each is a process tree with up to 1 GB, and the
# CPUs bound their throughput anyway.
MAX_COMMANDS = 2


@sandboxenv(name=SANDBOX_NAME)
class ChiefSandboxEnvironment(SandboxEnvironment):
    """A per-sample file set; commands run in a fresh bubblewrap sandbox each."""

    def __init__(self) -> None:
        super().__init__()
        self.files: dict[str, str | bytes] = {}

    @classmethod
    def default_concurrency(cls) -> int | None:
        """No cap on samples: a sample's sandbox is a few files in memory, and Inspect holds it
        for the sample's whole life, generation included. A cap of 2 here made code evals
        generate two answers at a time (the demo's 5 HumanEval problems on the base model took
        30 s, most of it waiting for a sandbox). `exec` caps what costs: `MAX_COMMANDS`."""
        return None

    @classmethod
    async def task_init(cls, task_name: str, config: SandboxEnvironmentConfigType | None) -> None:
        bwrap_path()  # refuses, with the install hint, when bubblewrap is missing

    @classmethod
    async def sample_init(
        cls, task_name: str, config: SandboxEnvironmentConfigType | None, metadata: dict[str, str]
    ) -> dict[str, SandboxEnvironment]:
        return {"default": cls()}

    @classmethod
    async def sample_cleanup(
        cls,
        task_name: str,
        config: SandboxEnvironmentConfigType | None,
        environments: dict[str, SandboxEnvironment],
        interrupted: bool,
    ) -> None:
        return None  # nothing lives outside memory

    async def exec(
        self,
        cmd: list[str],
        input: str | bytes | None = None,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        user: str | None = None,
        timeout: int | None = None,
        timeout_retry: bool = True,
        concurrency: bool = True,
    ) -> ExecResult[str]:
        if user is not None:
            raise SandboxUserUnsupportedError(
                f"the chief sandbox runs commands as its own user only, not {user!r}"
            )
        seconds = min(timeout or DEFAULT_TIMEOUT_S, MAX_TIMEOUT_S)
        limits = dataclasses.replace(SandboxLimits(), timeout_s=float(seconds), cpu_s=seconds)
        run = functools.partial(
            run_command,
            cmd,
            files=self.files,
            limits=limits,
            stdin=input,
            env=env or {},
            cwd=cwd or ".",
        )
        # Inspect's way for local sandboxes: one limit all samples share, unless opted out
        limit = (
            concurrency_limit(f"{SANDBOX_NAME}-sandbox-commands", MAX_COMMANDS)
            if concurrency
            else contextlib.nullcontext()
        )
        async with limit:
            result = await anyio.to_thread.run_sync(run)
        if result.timed_out:
            raise TimeoutError(f"command timed out after {seconds} s in the chief sandbox")
        return ExecResult(
            success=result.ok,
            returncode=result.returncode,
            stdout=result.stdout,
            stderr=result.stderr,
        )

    async def write_file(self, file: str, contents: str | bytes) -> None:
        name = self._relative(file, others=self.files)
        # Encoded now: text that is not UTF-8 fails here, not in every later command.
        self.files[name] = contents.encode() if isinstance(contents, str) else contents

    @overload
    async def read_file(self, file: str, text: Literal[True] = True) -> str: ...

    @overload
    async def read_file(self, file: str, text: Literal[False]) -> bytes: ...

    async def read_file(self, file: str, text: bool = True) -> str | bytes:
        name = self._relative(file)
        if name not in self.files:
            raise FileNotFoundError(
                f"{file}: not written to this chief sandbox "
                "(files written by commands do not persist)"
            )
        content = self.files[name]
        if text:
            return content if isinstance(content, str) else content.decode()
        return content.encode() if isinstance(content, str) else content

    @staticmethod
    def _relative(file: str, others: Iterable[str] = ()) -> str:
        """`file`, absolute or relative to /sandbox, as a name in `files`."""
        name = posixpath.relpath(file, "/sandbox") if posixpath.isabs(file) else file
        try:
            return sandbox_file_name(name, others)
        except SandboxFileNameError as error:
            raise error.like(f"chief sandbox: {file!r} {error.why}") from None


def docker_available() -> bool:
    """A Docker daemon answers (a `docker` binary alone is not enough)."""
    docker = shutil.which("docker")
    if docker is None:
        return False
    try:
        probe = subprocess.run(
            [docker, "version", "--format", "{{.Server.Version}}"],
            capture_output=True,
            timeout=15,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def code_sandbox(requested: SandboxEnvironmentType | None) -> str | None:
    """The sandbox to run a task with: None keeps the task's own; a Docker sandbox becomes `chief`
    when no Docker daemon answers, refused (EvalError) when bubblewrap is missing too."""
    kind = requested if isinstance(requested, str) else getattr(requested, "type", None)
    if kind is None and isinstance(requested, tuple):
        kind = requested[0]
    if kind != "docker" or docker_available():
        return None
    try:
        bwrap_path()
    except EvalError as error:
        raise EvalError(
            f"this task runs model-written code and no Docker daemon answers; {error}"
        ) from None
    return SANDBOX_NAME
