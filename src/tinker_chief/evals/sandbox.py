"""Run model-written code in a sandbox: bubblewrap namespaces plus rlimits, never in-process.

Each run gets a fresh private directory (the only writable path, also the cwd), a read-only
view of the system directories the interpreter needs (nothing from /work, /root or /home
besides the Python installation itself), no network (`--unshare-all` gives an empty network
namespace), its own PID namespace (killing the sandbox kills every process it spawned), a
cleared environment (no API keys), and CPU, address-space, file-size and open-file rlimits.
Inspect's built-in `local` sandbox has none of this (see reference/inspect-ai-offline.md §5).
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tinker_chief.errors import EvalError

_SYSTEM_DIRS = ("/usr", "/bin", "/lib", "/lib64", "/sbin", "/etc/alternatives", "/etc/ld.so.cache")


@dataclass(frozen=True)
class SandboxLimits:
    timeout_s: float = 10.0
    cpu_s: int = 10
    memory_mb: int = 1024
    max_file_mb: int = 16
    max_open_files: int = 64
    max_output_bytes: int = 1_000_000


@dataclass(frozen=True)
class SandboxResult:
    returncode: int
    stdout: str
    stderr: str
    timed_out: bool

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


def bwrap_path() -> str:
    path = shutil.which("bwrap")
    if path is None:
        raise EvalError("running model-written code needs bubblewrap (`apt-get install -y bubblewrap`); "
                        "chief refuses to run it unsandboxed")
    return path


def _python_root() -> Path:
    """The interpreter's installation (not the venv): read-only inside the sandbox."""
    return Path(sys.base_prefix).resolve()


def _bwrap_argv(workdir: Path, python: Path) -> list[str]:
    argv = [bwrap_path(), "--unshare-all", "--die-with-parent", "--new-session",
            "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    for path in _SYSTEM_DIRS:
        if os.path.exists(path):
            argv += ["--ro-bind", path, path]
    root = str(_python_root())
    argv += ["--ro-bind", root, root, "--bind", str(workdir), "/sandbox", "--chdir", "/sandbox",
             "--clearenv", "--setenv", "HOME", "/sandbox", "--setenv", "PATH", f"{python.parent}:/usr/bin:/bin",
             "--setenv", "PYTHONDONTWRITEBYTECODE", "1"]
    return argv


def _rlimits(limits: SandboxLimits):
    def apply() -> None:
        mb = 1024 * 1024
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s + 1))
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_mb * mb, limits.memory_mb * mb))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.max_file_mb * mb, limits.max_file_mb * mb))
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits.max_open_files, limits.max_open_files))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


def run_python(code: str, *, files: dict[str, str] | None = None, limits: SandboxLimits = SandboxLimits()
               ) -> SandboxResult:
    """Run `code` as `main.py` in a fresh sandbox directory; `files` are written beside it."""
    python = _python_root() / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    with tempfile.TemporaryDirectory(prefix="chief-sandbox-") as tmp:
        workdir = Path(tmp)
        for name, text in {**(files or {}), "main.py": code}.items():
            target = (workdir / name).resolve()
            if workdir.resolve() not in target.parents:
                raise EvalError(f"sandbox file name {name!r} escapes the sandbox directory")
            target.write_text(text)
        argv = [*_bwrap_argv(workdir, python), str(python), "-E", "-s", "main.py"]
        return _run(argv, limits)


def _run(argv: list[str], limits: SandboxLimits) -> SandboxResult:
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                               preexec_fn=_rlimits(limits), start_new_session=True)
    timed_out = False
    try:
        stdout, stderr = process.communicate(timeout=limits.timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
        # The whole session: bwrap, its PID-namespace init, and everything the code forked.
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
    cap = limits.max_output_bytes
    return SandboxResult(process.returncode, stdout[:cap].decode(errors="replace"),
                         stderr[:cap].decode(errors="replace"), timed_out)
