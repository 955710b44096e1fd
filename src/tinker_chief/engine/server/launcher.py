"""Start and stop a local engine process: the one engine module other capabilities import.

    from tinker_chief.engine.server.launcher import start_engine
    with start_engine(state_dir=Path(".chief/engine")) as engine:
        client = tinker.ServiceClient(base_url=engine.base_url, api_key=engine.api_key_for_clients)

The engine runs as `python -m tinker_chief.engine.server` in a subprocess (its own process, so
training code reaches it only over HTTP, exactly like Tinker's cloud). Ready means it printed
its base URL; a process that dies or stays silent past `ready_timeout` raises `EngineError`
with the tail of its log. `ensure_engine` reuses an engine already answering at a URL.

Unless given one, a started engine gets a random key of its own (`tml-` + 32 random bytes),
passed to it in its environment (never on its command line) and handed to clients as
`api_key_for_clients`, so no other user or web page can drive it. While an engine bound to a
loopback address runs, its key is also kept in a file only this user can read
(`<cache>/engine-keys/<address>_<port>`, mode 0600, in a directory only this user may write,
removed when it stops), so a later `chief` process of the same user finds it (`engine_key`).

The file is found only for a URL naming that exact address and port (not `localhost`, not
another loopback address on the same port: another user may listen there), and the key is sent
only after the server at the URL proved it holds it (auth.PROOF_PATH): nothing else that
answers at the URL, such as a program that took the address after the engine died, gets it.
Local model directories an engine may serve are passed as `allow_model_dirs` (the launcher's
callers list the ones their project names).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import os
import secrets
import stat
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import httpx

from tinker_chief.engine.server.auth import LOCAL_CLIENT_KEY, PROOF_PATH, engine_proof
from tinker_chief.engine.server.command import API_KEY_ENV
from tinker_chief.engine.server.serve import READY_PREFIX
from tinker_chief.errors import EngineError
from tinker_chief.models import cache_dir

log = logging.getLogger(__name__)

_LOG_TAIL_CHARS = 3000
_PROOF_TIMEOUT_S = 10.0
ENGINE_SPIN_COUNT = (
    "10000"  # libgomp spin iterations before a worker thread sleeps (its default: 300000)
)


@dataclass
class EngineHandle:
    """A running engine. `stop()` (or leaving the `with` block) shuts it down cleanly."""

    base_url: str
    api_key_for_clients: str = field(repr=False)
    log_file: Path | None = None
    process: subprocess.Popen | None = field(default=None, repr=False)
    key_file: Path | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        # Never leak an engine (or its key file) if the caller forgets stop()
        if self.process is not None:
            self._finalizer = weakref.finalize(self, _shut_down, self.process, 10.0, self.key_file)

    @property
    def owned(self) -> bool:
        """True if this handle started the process (and so stops it)."""
        return self.process is not None

    def is_running(self) -> bool:
        return self.process is None or self.process.poll() is None

    def stop(self, timeout: float = 30.0) -> None:
        if self.process is not None:
            self._finalizer.detach()
            _shut_down(self.process, timeout, self.key_file)

    def __enter__(self) -> EngineHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_engine(
    *,
    state_dir: Path,
    host: str = "127.0.0.1",
    port: int | None = None,
    device: str = "auto",
    dtype: str = "auto",
    api_key: str | None = None,
    log_file: Path | None = None,
    ready_timeout: float = 180.0,
    allow_model_dirs: Iterable[Path] = (),
    session_timeout: float | None = None,
    max_training_clients: int | None = None,
    sampling_memory_gib: float | None = None,
) -> EngineHandle:
    """Start `python -m tinker_chief.engine.server` and wait until it serves.

    Without `api_key` the engine gets a random key of its own (see the module docstring).
    """
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    log_file = Path(log_file) if log_file else state_dir / "engine.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.pop(API_KEY_ENV, None)
    # The engine shares the cores with its client (trainer, evals) and maybe other jobs. OpenMP
    # threads that sleep between the hundreds of small parallel regions of a decode step
    # (OMP_WAIT_POLICY=PASSIVE) made a bf16 sampling batch 1.6x slower; threads that spin long
    # (libgomp's default) made it 8-15x slower while another process computed on the same cores.
    # A short spin is within 5% of the fastest alone and at most ~2x slower than passive under
    # contention (docs/BENCHMARKS.md); a user's own OMP_WAIT_POLICY/GOMP_SPINCOUNT wins.
    if "OMP_WAIT_POLICY" not in env:
        env.setdefault("GOMP_SPINCOUNT", ENGINE_SPIN_COUNT)
    key = api_key or f"tml-{secrets.token_urlsafe(32)}"
    env[API_KEY_ENV] = (
        key  # the environment, not argv: a process listing shows every user the arguments
    )
    command = [
        sys.executable,
        "-m",
        "tinker_chief.engine.server",
        "--host",
        host,
        "--port",
        str(port or 0),
        "--state-dir",
        str(state_dir),
        "--device",
        device,
        "--dtype",
        dtype,
        "--exit-with-parent",
        str(os.getpid()),
    ]
    command += [
        arg for directory in allow_model_dirs for arg in ("--allow-model-dir", str(directory))
    ]
    if session_timeout is not None:
        command += ["--session-timeout", str(session_timeout)]
    if max_training_clients is not None:
        command += ["--max-training-clients", str(max_training_clients)]
    if sampling_memory_gib is not None:
        command += ["--sampling-memory-gib", repr(sampling_memory_gib)]
    offset = log_file.stat().st_size if log_file.exists() else 0
    with log_file.open("ab") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        )
    url = _wait_ready(process, log_file, offset, ready_timeout)
    # A caller's own key is never written.
    key_file = None if api_key else _save_key(url, key, process.pid)
    return EngineHandle(url, key, log_file, process, key_file)


def ensure_engine(
    base_url: str | None = None,
    *,
    state_dir: Path,
    api_key: str | None = None,
    **start_kwargs: object,
) -> EngineHandle:
    """The engine answering at `base_url` if there is one, else a newly started one.

    A reused engine's handle does not own the process: `stop()` leaves it running. Without
    `api_key`, the key of an engine that chief started at `base_url` is found (`engine_key`).
    """
    key = api_key or (engine_key(base_url) if base_url else None)
    if base_url and engine_is_up(base_url, key):
        return EngineHandle(base_url.rstrip("/"), key or LOCAL_CLIENT_KEY)
    return start_engine(state_dir=state_dir, api_key=api_key, **start_kwargs)  # type: ignore[arg-type]


def engine_key(base_url: str) -> str | None:
    """The key of a running engine that chief started at exactly this loopback address, found
    in this user's key file, once the server there proved it holds it; None where no such file
    applies or nothing answers at the URL (then the caller's key, or none, applies).

    Raises EngineError when something that is not that engine answers there: it must not get
    the key, and talking to it without one would only hide the problem."""
    key = _saved_key(base_url)
    if key is None:
        return None
    proven = _proves_key(base_url, key)
    if proven is None:
        return None  # nothing listens: no engine to send the key to
    if not proven:
        raise EngineError(
            f"the server at {base_url} is not the engine chief started there: it could not "
            "prove it holds that engine's key, so the key was not sent (another program may "
            "have taken the address; check what listens there)"
        )
    return key


def _proves_key(base_url: str, key: str) -> bool | None:
    """Whether the server at `base_url` answers the key proof for `key`; None if nothing listens."""
    nonce = secrets.token_hex(32)
    try:
        url = f"{base_url.rstrip('/')}{PROOF_PATH}"
        response = httpx.post(url, json={"nonce": nonce}, timeout=_PROOF_TIMEOUT_S)
        proof = response.json().get("proof") if response.is_success else None
    except httpx.ConnectError:
        return None
    except (httpx.HTTPError, ValueError, AttributeError):  # no answer, or not JSON with a proof
        return False
    return isinstance(proof, str) and hmac.compare_digest(proof, engine_proof(key, nonce))


def _saved_key(base_url: str) -> str | None:
    address = _loopback_address(base_url)
    directory = _key_dir() if address else None
    if address is None or directory is None:
        return None
    path = directory / _key_file_name(address)
    try:
        if not _private(path):
            return None
        saved = json.loads(path.read_text())
        recorded = (str(saved["host"]), int(saved["port"]))
        pid, key = int(saved["pid"]), str(saved["key"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if recorded != address or not _alive(pid):  # a file left by an engine that was killed is stale
        return None
    return key


def _loopback_address(base_url: str) -> tuple[str, int] | None:
    """(address, port) of a URL naming a loopback IP address literally; None for anything else,
    `localhost` included (it may resolve to an address another user listens on)."""
    try:
        parsed = urlparse(base_url)
        port = parsed.port
        address = ipaddress.ip_address(parsed.hostname or "")
    except ValueError:
        return None
    if not address.is_loopback or port is None:
        return None
    return address.compressed, port


def _key_file_name(address: tuple[str, int]) -> str:
    return f"{address[0]}_{address[1]}"


def _key_dir(create: bool = False) -> Path | None:
    """`<cache>/engine-keys` if it is a directory of this user that no one else may write to;
    else None, said in one line (another user could replace or plant the key files there)."""
    directory = cache_dir().parent / "engine-keys"
    try:
        if create:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        status = directory.lstat()
        if stat.S_ISLNK(status.st_mode) and status.st_uid == os.getuid():
            # A link this user made (say to a shared cache): the directory it names is judged.
            status = directory.stat()
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("not keeping engine keys in %s: %s", directory, exc.strerror or exc)
        return None
    if not stat.S_ISDIR(status.st_mode):
        problem = "it is not a directory"
    elif status.st_uid != os.getuid():
        problem = f"it belongs to another user (uid {status.st_uid})"
    elif status.st_mode & 0o022:
        problem = f"other users may write to it (mode {stat.S_IMODE(status.st_mode):o})"
    else:
        return directory
    log.warning(
        "not using %s for the keys of the engines chief starts: %s; remove it (chief recreates it) "
        "or pass the key in CHIEF_ENGINE_API_KEY",
        directory,
        problem,
    )
    return None


def _private(path: Path) -> bool:
    """Owned by this user and unreadable by anyone else."""
    status = path.stat()
    return status.st_uid == os.getuid() and not status.st_mode & 0o077


def _save_key(base_url: str, key: str, pid: int) -> Path | None:
    """Best effort: without the file only other processes' discovery of the key is lost."""
    address = _loopback_address(base_url)
    directory = _key_dir(create=True) if address else None
    if address is None or directory is None:
        return None
    path = directory / _key_file_name(address)
    try:
        handle, staging = tempfile.mkstemp(dir=directory, prefix=".key.")  # mkstemp creates it 0600
        with os.fdopen(handle, "w") as out:
            json.dump({"host": address[0], "port": address[1], "pid": pid, "key": key}, out)
        os.replace(staging, path)
    except OSError as exc:
        log.warning("could not save the engine's key in %s: %s", directory, exc.strerror or exc)
        return None
    return path


def _alive(pid: int) -> bool:
    # Gone, or another user's: not the engine that wrote it.
    try:
        os.kill(pid, 0)
    except (
        ProcessLookupError,
        PermissionError,
    ):
        return False
    return True


def engine_is_up(base_url: str, api_key: str | None = None, timeout: float = 2.0) -> bool:
    response = _get(base_url, "healthz", api_key, timeout)
    return response is not None and response.status_code == 200


def engine_stats(base_url: str, api_key: str | None = None, timeout: float = 5.0) -> dict | None:
    """A chief engine's `engine_stats` (device, precision, sampling batches); None from anything
    that is not a reachable chief engine (Tinker's cloud, a wrong key, a stopped engine)."""
    response = _get(base_url, "engine_stats", api_key, timeout)
    try:
        stats = response.json() if response is not None and response.is_success else None
    except ValueError:
        return None
    return stats if isinstance(stats, dict) else None


def _get(base_url: str, route: str, api_key: str | None, timeout: float) -> httpx.Response | None:
    try:
        return httpx.get(
            f"{base_url.rstrip('/')}/api/v1/{route}",
            timeout=timeout,
            headers={"X-API-Key": api_key or engine_key(base_url) or LOCAL_CLIENT_KEY},
        )
    except httpx.HTTPError:
        return None


def _wait_ready(process: subprocess.Popen, log_file: Path, offset: int, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = _read_from(log_file, offset)
        for line in text.splitlines():
            if line.startswith(READY_PREFIX):
                return line[len(READY_PREFIX) :].split()[0]
        if process.poll() is not None:
            raise EngineError(
                f"the engine exited with code {process.returncode} before it was ready; "
                f"log {log_file} ends with:\n{text[-_LOG_TAIL_CHARS:]}"
            )
        time.sleep(0.1)
    _terminate(process, 10.0)
    raise EngineError(
        f"the engine was not ready after {timeout:.0f} s; log {log_file} ends with:\n"
        f"{_read_from(log_file, offset)[-_LOG_TAIL_CHARS:]}"
    )


def _read_from(path: Path, offset: int) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            return handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def _shut_down(process: subprocess.Popen, timeout: float, key_file: Path | None) -> None:
    _terminate(process, timeout)
    if key_file is not None:
        key_file.unlink(missing_ok=True)


def _terminate(process: subprocess.Popen, timeout: float) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
