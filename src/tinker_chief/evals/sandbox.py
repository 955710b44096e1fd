"""Run model-written code in a sandbox: bubblewrap namespaces plus limits, never in-process.

Who runs it: the code runs as uid/gid 65534 (`nobody`) inside its own user namespace, with
no capabilities (`--cap-drop ALL`, no_new_privs) and no way to make nested user namespaces
(`--disable-userns`). When chief runs as root, bwrap itself is started as `nobody`, so on the
host too the sandbox's processes and files belong to an unprivileged uid; a normal user's
sandbox maps `nobody` to that user. Either way `mount`, `mknod` and writes to the read-only
system view fail, and a setuid bit is worthless (every mount is nosuid,nodev).

What it sees: a read-only view of the system directories the interpreter needs and of the
Python installation (nothing from /work, /root or /home besides that), a size-limited tmpfs
at /sandbox (the cwd, holding `main.py` and the caller's files, copied in) which also backs
/tmp, nothing else writable, no network (an empty network namespace), its own PID namespace
(killing the sandbox kills every process it spawned; its /proc shows only its own processes) and
no environment from chief: bwrap itself starts with an empty one, because its helper, PID 1 in
the sandbox, keeps what bwrap started with where the code can read it (/proc/1/environ), and
`--clearenv` only cleans the command's. A file name bwrap would fail on is refused up front.

Limits, for the sandbox as a whole: processes (RLIMIT_NPROC, which the kernel counts per
user namespace, so per sandbox: a fork bomb stops at `max_processes`), memory (every process
together, measured as PSS every 50 ms; the sandbox is killed past `memory_mb`; each process
also has an RLIMIT_AS of `memory_mb`), scratch space (`scratch_mb` for /sandbox and /tmp
together, in RAM), output (read incrementally, at most `max_output_bytes` kept per stream,
the rest discarded) and wall time. Per process: CPU seconds, file size, open files, no core.
Memory that would belong to no process, and so escape the PSS sum, cannot be made: a seccomp
filter refuses SysV shared memory, semaphores and message queues, memfd_create and memfd_secret
(EPERM), and every system call of another ABI (x32, 32-bit). Still outside the sum: the
scratch tmpfs (`scratch_mb`) and kernel socket and pipe buffers (see docs/EVALS.md).
Inspect's built-in `local` sandbox has none of this (see reference/inspect-ai-offline.md §5);
`inspect_sandbox.py` offers this one to Inspect tasks. `run_python` runs a program,
`run_command` any command (found through the sandbox's PATH, where `python` is chief's
interpreter without the venv).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import posixpath
import resource
import selectors
import shutil
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from tinker_chief.errors import EvalError

_SYSTEM_DIRS = ("/usr", "/bin", "/lib", "/lib64", "/sbin", "/etc/alternatives", "/etc/ld.so.cache")
_NOBODY = 65534  # the conventional unprivileged uid and gid
_WORKDIR = "/sandbox"
_TMP_DIR = ".tmp"  # under _WORKDIR: the directory /tmp links to
_NAME_MAX = 255  # bytes in one path component (Linux)
_MB = 1024 * 1024
_POLL_S = 0.05  # how often the memory watchdog measures the sandbox
_KILL_GRACE_S = 2.0  # after a kill, how long to drain output the pipes still hold
# <linux/sched.h>, <sys/mount.h>: enough of unshare(2) and mount(2) for _become_nobody.
_CLONE_NEWNS, _MS_BIND, _MS_REC, _MS_PRIVATE = 0x20000, 0x1000, 0x4000, 0x40000
_PYTHON_SOURCE = "/tmp/chief-python"  # root only: where bwrap, run as nobody, finds the install
# Per machine: the seccomp audit arch, then the calls that make memory no process holds:
# shmget, semget, msgget, memfd_create, memfd_secret (<asm/unistd*.h>, <linux/audit.h>).
_MEMORY_OUTSIDE_PROCESSES = {
    "x86_64": (0xC000003E, (29, 64, 68, 319, 447)),
    "aarch64": (0xC00000B7, (194, 190, 186, 279, 447)),
}
_X32_SYSCALL_BIT = 0x40000000  # x86_64's x32 ABI: its numbers of the same calls, refused wholesale
# <linux/filter.h>, <linux/seccomp.h>: classic BPF over struct seccomp_data (nr at 0, arch at 4).
_BPF_LOAD, _BPF_JEQ, _BPF_JGE, _BPF_RETURN = 0x20, 0x15, 0x35, 0x06
_SECCOMP_ALLOW, _SECCOMP_EPERM = 0x7FFF0000, 0x00050000 | 1


@dataclass(frozen=True)
class SandboxLimits:
    timeout_s: float = 10.0
    cpu_s: int = 10  # per process
    memory_mb: int = 1024  # the whole sandbox (measured), and each process (RLIMIT_AS)
    max_file_mb: int = 16  # per file
    max_open_files: int = 64  # per process
    max_output_bytes: int = 1_000_000  # per stream; the rest is read and discarded
    max_processes: int = 16  # the whole sandbox, threads and bwrap's own init included
    scratch_mb: int = 64  # /sandbox and /tmp together, a tmpfs (RAM)


@dataclass(frozen=True)
class SandboxResult:
    returncode: int
    stdout: str
    stderr: str
    timed_out: bool
    out_of_memory: bool = False  # killed by the watchdog for using more than memory_mb together

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out and not self.out_of_memory


def bwrap_path() -> str:
    path = shutil.which("bwrap")
    if path is None:
        raise EvalError(
            "running model-written code needs bubblewrap (`apt-get install -y bubblewrap`); "
            "chief refuses to run it unsandboxed"
        )
    return path


def _python_root() -> Path:
    """The interpreter's installation (not the venv): read-only inside the sandbox."""
    return Path(sys.base_prefix).resolve()


def _bwrap_argv(
    python_source: Path,
    files: dict[str, int],
    limits: SandboxLimits,
    seccomp: int | None,
) -> list[str]:
    """`python_source` is where bwrap finds the Python installation (see _become_nobody);
    `files` maps a path under /sandbox to a file descriptor holding its content; `seccomp` is
    a file descriptor holding the filter (see _seccomp_filter)."""
    ids = str(_NOBODY)
    argv = [
        bwrap_path(),
        "--unshare-all",
        "--unshare-user",
        "--uid",
        ids,
        "--gid",
        ids,
        "--disable-userns",
        "--cap-drop",
        "ALL",
        "--die-with-parent",
        "--new-session",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
    ]
    for path in _SYSTEM_DIRS:
        if os.path.exists(path):
            argv += ["--ro-bind", path, path]
    root = str(_python_root())
    argv += [
        "--ro-bind",
        str(python_source),
        root,
        "--size",
        str(limits.scratch_mb * _MB),
        "--tmpfs",
        _WORKDIR,
        "--dir",
        f"{_WORKDIR}/{_TMP_DIR}",
        "--symlink",
        f"{_WORKDIR}/{_TMP_DIR}",
        "/tmp",
    ]
    for name, fd in files.items():
        argv += ["--file", str(fd), f"{_WORKDIR}/{name}"]
    if seccomp is not None:
        argv += ["--seccomp", str(seccomp)]
    # bwrap's own root and /dev are unbounded tmpfs owned by the sandbox user: make them read-only.
    argv += [
        "--remount-ro",
        "/",
        "--remount-ro",
        "/dev",
        "--chdir",
        _WORKDIR,
        "--clearenv",
        "--setenv",
        "HOME",
        _WORKDIR,
        "--setenv",
        "PATH",
        f"{root}/bin:/usr/bin:/bin",
        "--setenv",
        "PYTHONDONTWRITEBYTECODE",
        "1",
    ]
    return argv


def _prelude(
    limits: SandboxLimits, started_fd: int, argv: list[str], env: dict[str, str], cwd: str
) -> str:
    """Python run first inside the sandbox: set the rlimits, say "started", then become `argv`
    (resolved through the sandbox's PATH, with `env` added, in `cwd` under /sandbox).

    RLIMIT_NPROC is set here, after bwrap made the user namespace: the kernel counts processes
    per (user namespace, uid), so inside it the limit counts this sandbox's processes only."""
    cpu, memory, file = limits.cpu_s, limits.memory_mb * _MB, limits.max_file_mb * _MB
    rlimits = [
        (resource.RLIMIT_NPROC, limits.max_processes, limits.max_processes),
        (resource.RLIMIT_CPU, cpu, cpu + 1),
        (resource.RLIMIT_AS, memory, memory),
        (resource.RLIMIT_FSIZE, file, file),
        (resource.RLIMIT_NOFILE, limits.max_open_files, limits.max_open_files),
        (resource.RLIMIT_CORE, 0, 0),
    ]
    return (
        "import os, resource, sys\n"
        f"for which, soft, hard in {rlimits!r}:\n    resource.setrlimit(which, (soft, hard))\n"
        f"os.environ.update({env!r})\nos.makedirs({cwd!r}, exist_ok=True)\nos.chdir({cwd!r})\n"
        f"os.write({started_fd}, b'1')\nos.close({started_fd})\n"
        f"os.execvp({argv[0]!r}, {argv!r})\n"
    )


def _become_nobody(python_root: Path) -> Callable[[], None]:
    """For root: run bwrap as `nobody`, so no sandbox process is uid 0 on the host.

    bwrap resolves bind sources as the user it runs as, and the Python install often sits
    under /root (pyenv, uv), which `nobody` cannot enter. So the child first gets a private
    mount namespace whose /tmp is a fresh tmpfs holding the install at _PYTHON_SOURCE; the
    host never sees these mounts (and bwrap's own root, which it also mounts on /tmp, only
    covers them until it pivots away)."""
    libc = ctypes.CDLL(None, use_errno=True)

    def check(result: int, what: str) -> None:
        if result != 0:
            raise OSError(ctypes.get_errno(), f"{what} failed")

    def apply() -> None:
        check(libc.unshare(_CLONE_NEWNS), "unshare(CLONE_NEWNS)")
        check(libc.mount(None, b"/", None, _MS_REC | _MS_PRIVATE, None), "making mounts private")
        # still reachable if it lives under /tmp
        install = os.open(python_root, os.O_PATH | os.O_DIRECTORY)
        check(
            libc.mount(b"tmpfs", b"/tmp", b"tmpfs", 0, b"size=64k,mode=0755"),
            "mounting a tmpfs on /tmp",
        )
        os.mkdir(_PYTHON_SOURCE)
        check(
            libc.mount(
                f"/proc/self/fd/{install}".encode(),
                _PYTHON_SOURCE.encode(),
                None,
                _MS_BIND | _MS_REC,
                None,
            ),
            "bind mount",
        )
        os.close(install)
        os.setgroups([])
        os.setresgid(_NOBODY, _NOBODY, _NOBODY)
        os.setresuid(_NOBODY, _NOBODY, _NOBODY)  # drops every capability too

    return apply


def _seccomp_filter() -> bytes | None:
    """bwrap's `--seccomp` program: EPERM for the calls in _MEMORY_OUTSIDE_PROCESSES and for
    any call of another ABI, everything else allowed. None on a machine without a table."""
    known = _MEMORY_OUTSIDE_PROCESSES.get(platform.machine())
    if known is None or struct.calcsize("P") != 8:
        return None
    arch, refused = known

    def op(code: int, k: int, jump_if_true: int = 0) -> bytes:
        return struct.pack("=HBBI", code, jump_if_true, 0, k)

    # Jumps count instructions skipped; each lands on the final `return EPERM`.
    program = [
        op(_BPF_LOAD, 4),
        op(_BPF_JEQ, arch, jump_if_true=1),
        op(_BPF_RETURN, _SECCOMP_EPERM),
        op(_BPF_LOAD, 0),
        op(_BPF_JGE, _X32_SYSCALL_BIT, jump_if_true=len(refused) + 1),
        *(op(_BPF_JEQ, number, jump_if_true=len(refused) - i) for i, number in enumerate(refused)),
        op(_BPF_RETURN, _SECCOMP_ALLOW),
        op(_BPF_RETURN, _SECCOMP_EPERM),
    ]
    return b"".join(program)


_SECCOMP_FILTER = _seccomp_filter()


def _memfd(content: str | bytes, name: str) -> int:
    """A file descriptor holding `content`, read from its start (bwrap and stdin read it)."""
    fd = os.memfd_create(name)
    os.write(fd, content.encode() if isinstance(content, str) else content)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


class SandboxFileNameError(EvalError):
    """A name no file under /sandbox can have. `like` is the error a file system would raise
    (ValueError for a NUL byte, as `open` does), for callers that speak in those."""

    def __init__(self, name: str, why: str, like: type[Exception]) -> None:
        super().__init__(f"sandbox file name {name!r} {why}")
        self.why, self.like = why, like


def sandbox_file_name(name: str, others: Iterable[str] = ()) -> str:
    """`name` as a file's path relative to /sandbox, normalized, beside the files `others`
    (normalized names). Refused (SandboxFileNameError) where bwrap would fail to create it,
    which would stop every command given that file from starting."""
    normal = posixpath.normpath(name)
    problem = _file_name_problem(name, normal, others)
    if problem is not None:
        raise SandboxFileNameError(name, *problem)
    return normal


def _file_name_problem(
    name: str,
    normal: str,
    others: Iterable[str],
) -> tuple[str, type[Exception]] | None:
    if "\0" in name:
        return "holds a NUL byte (embedded null byte)", ValueError
    if _escapes_workdir(normal):
        return "is outside the sandbox directory", PermissionError
    if normal == ".":
        return "is the sandbox directory itself", IsADirectoryError
    if normal == _TMP_DIR:
        return "is the directory behind /tmp", IsADirectoryError
    try:
        parts = [os.fsencode(part) for part in normal.split("/")]
    except UnicodeEncodeError:
        return "is not valid text for a file name", ValueError
    if any(len(part) > _NAME_MAX for part in parts):
        return f"has a part longer than {_NAME_MAX} bytes", PermissionError
    for other in others:
        if other.startswith(normal + "/"):
            return f"is a directory: it holds {other}", IsADirectoryError
        if normal.startswith(other + "/"):
            return f"is inside {other}, which is a file, not a directory", PermissionError
    return None


def _escapes_workdir(name: str) -> bool:
    normal = posixpath.normpath(name)
    return posixpath.isabs(normal) or normal == ".." or normal.startswith("../")


def _sandbox_files(files: dict[str, str | bytes]) -> dict[str, int]:
    """Each file's content in a memfd (bwrap copies it into the sandbox's tmpfs)."""
    names: list[str] = []
    for name in files:
        names.append(sandbox_file_name(name, names))
    return {normal: _memfd(files[name], "chief-sandbox-file") for normal, name in zip(names, files)}


def run_python(
    code: str, *, files: dict[str, str] | None = None, limits: SandboxLimits = SandboxLimits()
) -> SandboxResult:
    """Run `code` as `main.py` in a fresh sandbox directory; `files` are written beside it."""
    python = _python_root() / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    return run_command(
        [str(python), "-E", "-s", "main.py"],
        files={**(files or {}), "main.py": code},
        limits=limits,
    )


def run_command(
    argv: list[str],
    *,
    files: dict[str, str | bytes] | None = None,
    limits: SandboxLimits = SandboxLimits(),
    stdin: str | bytes | None = None,
    env: dict[str, str] | None = None,
    cwd: str = ".",
) -> SandboxResult:
    """Run `argv` (argv[0] found through the sandbox's PATH, where `python` is the interpreter
    chief runs on, without the venv) in a fresh sandbox directory holding `files`; `cwd` is
    relative to that directory. Nothing the command writes outlives the call."""
    if not argv:
        raise EvalError("sandbox: empty command")
    if _escapes_workdir(cwd):
        raise EvalError(f"sandbox working directory {cwd!r} escapes the sandbox directory")
    fds = _sandbox_files(files or {})
    started_r, started_w = os.pipe()
    os.set_blocking(started_r, False)
    stdin_fd = None if stdin is None else _memfd(stdin, "chief-sandbox-stdin")
    seccomp = None if _SECCOMP_FILTER is None else _memfd(_SECCOMP_FILTER, "chief-sandbox-seccomp")
    extra_fds = [fd for fd in (stdin_fd, seccomp) if fd is not None]
    try:
        python_source, preexec = _python_root(), None
        if os.geteuid() == 0:
            python_source, preexec = Path(_PYTHON_SOURCE), _become_nobody(_python_root())
        python = _python_root() / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
        prelude = _prelude(
            limits, started_w, argv, env or {}, posixpath.join(_WORKDIR, posixpath.normpath(cwd))
        )
        sandbox = _bwrap_argv(python_source, fds, limits, seccomp)
        bwrap = [*sandbox, str(python), "-E", "-s", "-c", prelude]
        passed = (started_w, *fds.values(), *([] if seccomp is None else [seccomp]))
        result = _run(bwrap, limits, pass_fds=passed, preexec=preexec, stdin=stdin_fd)
        if not _read_started(started_r) and not (result.timed_out or result.out_of_memory):
            raise EvalError(f"the code sandbox could not start: {_last_line(result.stderr)}")
        return result
    finally:
        for fd in (*fds.values(), started_r, started_w, *extra_fds):
            os.close(fd)


def _read_started(fd: int) -> bool:
    try:
        return os.read(fd, 1) == b"1"
    except BlockingIOError:
        return False


def _last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else "bwrap exited without a message"


def _run(
    argv: list[str],
    limits: SandboxLimits,
    *,
    pass_fds: tuple[int, ...],
    preexec: Callable[[], None] | None,
    stdin: int | None = None,
) -> SandboxResult:
    try:
        process = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL if stdin is None else stdin,
            pass_fds=pass_fds,
            preexec_fn=preexec,
            start_new_session=True,
            env={},  # bwrap's PID-1 helper keeps its environment readable to the code: give it none
        )
    except subprocess.SubprocessError as error:  # preexec failed: no mount rights, though root
        raise EvalError(
            f"the code sandbox could not start: dropping root to uid {_NOBODY} failed ({error})"
        ) from None
    output = _Output(process, limits.max_output_bytes)
    deadline = time.monotonic() + limits.timeout_s
    next_check = 0.0
    timed_out = out_of_memory = False
    while output.pump(min(_POLL_S, deadline - time.monotonic())):
        now = time.monotonic()
        timed_out = now >= deadline
        if not timed_out and now >= next_check:
            out_of_memory = _tree_memory_bytes(process.pid) > limits.memory_mb * _MB
            next_check = now + _POLL_S
        if timed_out or out_of_memory:
            # The whole session: bwrap, its PID-namespace init, and everything the code forked.
            with contextlib.suppress(ProcessLookupError):  # it exited just now by itself
                os.killpg(process.pid, signal.SIGKILL)
            grace = time.monotonic() + _KILL_GRACE_S
            while output.pump(grace - time.monotonic()) and time.monotonic() < grace:
                pass
            break
    output.close()
    returncode = process.wait()
    stderr = output.kept["stderr"].decode(errors="replace")
    if out_of_memory:
        used = f"its processes used more than {limits.memory_mb} MB together"
        stderr += f"\nchief sandbox: killed, {used}\n"
    return SandboxResult(
        returncode, output.kept["stdout"].decode(errors="replace"), stderr, timed_out, out_of_memory
    )


class _Output:
    """Reads stdout and stderr as they come, keeping at most `cap` bytes of each and discarding
    the rest."""

    def __init__(self, process: subprocess.Popen[bytes], cap: int) -> None:
        assert process.stdout is not None and process.stderr is not None
        self._pipes = (process.stdout, process.stderr)
        self._streams = {process.stdout.fileno(): "stdout", process.stderr.fileno(): "stderr"}
        self._selector = selectors.DefaultSelector()
        for fd in self._streams:
            self._selector.register(fd, selectors.EVENT_READ)
        self.kept = {name: bytearray() for name in self._streams.values()}
        self._cap = cap

    def pump(self, timeout: float) -> bool:
        """Read what is ready within `timeout` seconds; False once both pipes are at EOF."""
        for key, _ in self._selector.select(max(0.0, timeout)):
            chunk = os.read(key.fd, 65536)
            if not chunk:
                self._selector.unregister(key.fd)
                continue
            kept = self.kept[self._streams[key.fd]]
            kept += chunk[: self._cap - len(kept)]
        return bool(self._selector.get_map())

    def close(self) -> None:
        self._selector.close()
        for pipe in self._pipes:
            pipe.close()


def _tree_memory_bytes(pid: int) -> int:
    """PSS of `pid` and all its descendants (orphans stay inside: they reparent to the sandbox's
    init)."""
    total_kb, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            for tid in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{tid}/children") as children:
                    pending += [int(child) for child in children.read().split()]
            with open(f"/proc/{current}/smaps_rollup") as rollup:
                total_kb += next(int(line.split()[1]) for line in rollup if line.startswith("Pss:"))
        except (FileNotFoundError, ProcessLookupError, StopIteration):
            continue  # exited while we looked
    return total_kb * 1024
