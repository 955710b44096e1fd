"""Run the engine in this process: build the backend, the app, and serve until a signal.

`serve(settings)` is what the engine's command (`command.serve_command`) calls, run by both
`python -m tinker_chief.engine.server` (the launcher's) and `chief engine serve`. It prints one
line `chief engine listening on <base_url>` once the socket accepts connections (the launcher
waits for exactly that line). On SIGINT/SIGTERM it stops taking new work, fails queued futures
with "the engine is shutting down", lets the request on the compute thread finish, and exits.

A request's client address (what the wrong-key limiter counts by) is the connection's peer.
uvicorn would take it from `X-Forwarded-For` when the peer is 127.0.0.1, so any local client
could pose as any address; the engine trusts that header only from the proxies named in
`forwarded_allow_ips` (`--forwarded-allow-ips`).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import uvicorn

from tinker_chief.engine.server.auth import check_bind, is_loopback
from tinker_chief.errors import ConfigurationError
from tinker_chief.settings import log_level

READY_PREFIX = "chief engine listening on "
LOG_LEVEL_ENV = "CHIEF_ENGINE_LOG"  # the engine log's level: DEBUG ... CRITICAL (default INFO)
GiB = 1 << 30
Device = Literal["auto", "cpu", "cuda"]
DType = Literal["auto", "float32", "bfloat16"]


@dataclass(frozen=True)
class EngineSettings:
    state_dir: Path
    host: str = "127.0.0.1"
    port: int = 8765  # 0 picks a free port
    device: Device = "auto"
    dtype: DType = "auto"
    api_key: str | None = None
    # Local model directories clients may use as base models.
    allow_model_dirs: tuple[Path, ...] = ()
    session_timeout: float | None = None  # None: the engine's default (service.SESSION_TIMEOUT_S)
    max_training_clients: int | None = (
        None  # None: the engine's default (service.MAX_TRAINING_CLIENTS)
    )
    forwarded_allow_ips: str | None = None  # proxies whose X-Forwarded-For is trusted; None: none
    sampling_memory_gib: float | None = None  # None: half the memory free at start (devices.py)

    def __repr__(self) -> str:  # never show the key
        return (
            f"EngineSettings(state_dir={self.state_dir!s}, host={self.host}, port={self.port}, "
            f"device={self.device}, dtype={self.dtype}, "
            f"api_key={'set' if self.api_key else 'none'}, "
            f"allow_model_dirs={len(self.allow_model_dirs)}, "
            f"session_timeout={self.session_timeout}, "
            f"max_training_clients={self.max_training_clients}, "
            f"forwarded_allow_ips={self.forwarded_allow_ips}, "
            f"sampling_memory_gib={self.sampling_memory_gib})"
        )

    def check(self) -> None:
        """Refuse bad settings before anything is loaded (ConfigurationError naming the flag)."""
        check_bind(self.host, self.api_key)
        check_listenable(self.host)
        if self.session_timeout is not None and not self.session_timeout > 0:
            raise ConfigurationError(
                "--session-timeout must be a positive number of seconds, "
                f"got {self.session_timeout}"
            )
        if self.max_training_clients is not None and self.max_training_clients < 1:
            raise ConfigurationError(
                f"--max-training-clients must be at least 1, got {self.max_training_clients}"
            )
        self.trusted_proxies()
        gib = self.sampling_memory_gib
        if gib is not None and not 0 < gib < float("inf"):
            raise ConfigurationError(f"--sampling-memory-gib must be a positive number, got {gib}")
        if self.state_dir.exists() and not self.state_dir.is_dir():
            raise ConfigurationError(f"--state-dir {self.state_dir}: a file; expected a directory")

    def trusted_proxies(self) -> list[str]:
        """`--forwarded-allow-ips` as uvicorn's list, each entry an IP address or network."""
        entries = [e.strip() for e in (self.forwarded_allow_ips or "").split(",") if e.strip()]
        for entry in entries:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ConfigurationError(
                    f"--forwarded-allow-ips: {entry[:100]!r} is not an IP address or network "
                    "(expected the proxies' addresses, comma-separated, e.g. 10.0.0.5,10.1.0.0/16)"
                ) from None
        return entries

    @property
    def serves_only_this_machine(self) -> bool:
        """Loopback bind and no proxy in front: every client runs on this machine."""
        return is_loopback(self.host) and not self.trusted_proxies()

    @property
    def sampling_memory(self) -> int | None:
        """`sampling_memory_gib` in bytes (None: the backend's default)."""
        if self.sampling_memory_gib is None:
            return None
        return max(1, int(self.sampling_memory_gib * GiB))


def base_url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


class _Server(uvicorn.Server):
    """uvicorn server that announces readiness and fails queued work as soon as a signal arrives."""

    def __init__(self, config: uvicorn.Config, on_signal, announce) -> None:
        super().__init__(config)
        self._on_signal, self._announce = on_signal, announce

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets)
        if self.started and self.servers and self.servers[0].sockets:
            self._announce(self.servers[0].sockets[0].getsockname()[1])

    def handle_exit(self, sig, frame) -> None:
        if not self.should_exit:
            threading.Thread(target=self._on_signal, daemon=True).start()
        super().handle_exit(sig, frame)
        # uvicorn re-raises the signal after shutting down; a clean shutdown here exits 0 instead.
        self._captured_signals.clear()


def check_listenable(host: str) -> None:
    """`host` is an address of this machine (or a name of one): else a ConfigurationError now,
    not uvicorn's error line (exit 3) or a traceback once the model is loading. Binds port 0 for
    a moment to ask the OS."""
    try:
        infos = socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, _type, _proto, _name, address = infos[0]
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind(address)
    except (OSError, UnicodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigurationError(
            f"--host {host!r}: not an address this machine can listen on ({why})"
        ) from None


def serve(settings: EngineSettings) -> None:
    """Blocking: serve the engine until SIGINT/SIGTERM. Raises ChiefError on bad settings."""
    settings.check()
    from tinker_chief.engine.server import limits
    from tinker_chief.models import LocalModelDirs

    # A bad CHIEF_ENGINE_READ_TIMEOUT or CHIEF_ENGINE_LOG fails before torch loads.
    read_timeout_s = limits.read_timeout()
    level = log_level(LOG_LEVEL_ENV, "INFO")

    # A bad entry fails before torch loads.
    local_dirs = LocalModelDirs.allow(settings.allow_model_dirs)
    from tinker_chief.engine.backend import size_text
    from tinker_chief.engine.compute import TorchBackend
    from tinker_chief.engine.server import service
    from tinker_chief.engine.server.app import create_app
    from tinker_chief.engine.server.base_model_facts import BaseModelCatalog

    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    local_clients_only = settings.serves_only_this_machine
    backend = TorchBackend(
        device=settings.device,
        dtype=settings.dtype,
        spill_root=settings.state_dir / "evicted-samplers",
        sampling_memory=settings.sampling_memory,
    )
    engine = service.EngineService(
        backend,
        settings.state_dir,
        catalog=BaseModelCatalog(backend, local_dirs, tokenizer_paths=local_clients_only),
        session_timeout=settings.session_timeout or service.SESSION_TIMEOUT_S,
        max_training_clients=settings.max_training_clients or service.MAX_TRAINING_CLIENTS,
    )
    app = create_app(engine, api_key=settings.api_key, bind_host=settings.host)
    proxies = settings.trusted_proxies()
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=5,
        lifespan="on",
        http=limits.guarded_h11(read_timeout_s),  # closes connections that stall
        # asyncio, not uvloop even where installed (trackio pulls it in): one event loop for
        # every install, the one the tests exercise.
        loop="asyncio",
        proxy_headers=bool(proxies),  # uvicorn's default trusts X-Forwarded-For from 127.0.0.1
        forwarded_allow_ips=proxies or None,
    )

    def announce(port: int) -> None:
        print(
            f"{READY_PREFIX}{base_url(settings.host, port)} (device {backend.device}, state dir "
            f"{settings.state_dir}, sampling memory {size_text(backend.sampling_memory)})",
            flush=True,
        )

    _Server(config, on_signal=engine.scheduler.stop, announce=announce).run()
