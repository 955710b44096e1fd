"""The engine's one command line: `chief engine serve` and `python -m tinker_chief.engine.server`.

`serve_command` is the click command both run: the CLI mounts it in its `engine` group (cli may
import engine, engine may not import cli), and `__main__.py` runs it as the process the launcher
starts, so the two cannot disagree on a flag, a default or a check. The launcher passes the API
key only in the environment (`CHIEF_ENGINE_API_KEY`), never on the command line, where every
user's `ps` shows it. `--exit-with-parent PID` (hidden: the launcher's, not a user's) makes the
engine shut down cleanly once that process is gone, so a `chief train` killed with SIGKILL does
not leave its engine running.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import click
from click.core import ParameterSource

from tinker_chief.paths import ENGINE_STATE

API_KEY_ENV = "CHIEF_ENGINE_API_KEY"
DEVICES = click.Choice(["auto", "cpu", "cuda"])
DTYPES = click.Choice(["auto", "float32", "bfloat16"])
STATE_DIR_HELP = (
    "Where runs and checkpoints live (default: .chief/engine in the current directory)."
)


@click.command("serve")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to bind; anything but loopback needs --api-key.",
)
@click.option(
    "--port",
    default=8765,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port (0 picks a free one).",
)
@click.option(
    "--state-dir", type=click.Path(path_type=Path), default=ENGINE_STATE, help=STATE_DIR_HELP
)
@click.option(
    "--device", type=DEVICES, default="auto", show_default=True, help="cuda when present, else cpu."
)
@click.option(
    "--dtype",
    type=DTYPES,
    default="auto",
    show_default=True,
    help="Compute dtype. auto: on a CPU the faster of bfloat16 and float32 here, by a cached "
    "GEMM probe (never bfloat16 without native bf16); on CUDA bfloat16 where supported. "
    "float32 for exact scoring. On a CPU the probe also picks float32's faster kernel "
    "(F.linear or oneDNN).",
)
@click.option(
    "--api-key",
    envvar=API_KEY_ENV,
    default=None,
    show_envvar=True,
    help="Require this key (tml-...) in X-API-Key on every request. Prefer the environment "
    "variable: on the command line the key shows in every user's `ps`.",
)
@click.option(
    "--allow-model-dir",
    "allow_model_dirs",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Serve this local Hugging Face model directory as a base model, named by the directory's "
    "name (repeatable; without it only built-ins and cached hub ids are served).",
)
@click.option(
    "--session-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Seconds without a heartbeat or request after which a session ends and its clients are "
    "unloaded [default: 300].",
)
@click.option(
    "--max-training-clients",
    type=click.IntRange(min=1),
    default=None,
    help="Most training clients loaded at once; one more is refused [default: 32].",
)
@click.option(
    "--forwarded-allow-ips",
    default=None,
    metavar="IPS",
    help="Comma-separated addresses or networks of the reverse proxies in front of the engine: "
    "only their X-Forwarded-For header names a client's address (wrong-key rate limiting counts "
    "by it) [default: none, the connection's own address counts].",
)
@click.option(
    "--sampling-memory-gib",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="GiB of KV cache sampling may hold at once: requests that do not fit beside each other "
    "wait their turn, and a single sample longer than this is refused [default: half the GPU "
    "memory (CUDA) or RAM free when the engine starts].",
)
@click.option("--exit-with-parent", type=int, default=None, hidden=True, metavar="PID")
def serve_command(
    host: str,
    port: int,
    state_dir: Path,
    device: str,
    dtype: str,
    api_key: str | None,
    allow_model_dirs: tuple[Path, ...],
    session_timeout: float | None,
    max_training_clients: int | None,
    forwarded_allow_ips: str | None,
    sampling_memory_gib: float | None,
    exit_with_parent: int | None,
) -> None:
    """Serve the engine until Ctrl-C / SIGTERM; prints its base URL when ready.

    \b
    Connect with:
      tinker.ServiceClient(base_url="http://127.0.0.1:8765", api_key="tml-local")
    """
    # Imported here: `chief engine export` and `--help` need neither uvicorn nor the app.
    from tinker_chief.engine.server.serve import EngineSettings, serve

    if (
        api_key
        and click.get_current_context().get_parameter_source("api_key")
        == ParameterSource.COMMANDLINE
    ):
        click.secho(
            "Warning: --api-key on the command line is visible to every user of this machine in "
            "the process list (ps); set CHIEF_ENGINE_API_KEY in the environment instead.",
            fg="yellow",
            err=True,
        )
    if exit_with_parent:
        _exit_with_parent(exit_with_parent)
    serve(
        EngineSettings(
            state_dir=state_dir,
            host=host,
            port=port,
            # click.Choice narrows these to the Literal values at run time; mypy sees str.
            device=device,  # type: ignore[arg-type]
            dtype=dtype,  # type: ignore[arg-type]
            api_key=api_key or None,
            allow_model_dirs=allow_model_dirs,
            session_timeout=session_timeout,
            max_training_clients=max_training_clients,
            forwarded_allow_ips=forwarded_allow_ips,
            sampling_memory_gib=sampling_memory_gib,
        )
    )


def _exit_with_parent(parent_pid: int, poll_seconds: float = 1.0) -> None:
    """SIGTERM ourselves (the engine's clean shutdown path) once `parent_pid` is no longer our
    parent."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(poll_seconds)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()
