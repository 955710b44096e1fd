"""`python -m tinker_chief.engine.server`: the engine process the launcher starts.

Same flags as `chief engine serve`; the API key comes only from the environment
(`CHIEF_ENGINE_API_KEY`) so it never appears in a process listing. `--exit-with-parent PID`
makes the engine shut down cleanly once that process is gone, so a `chief train` killed with
SIGKILL does not leave its engine running.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from pathlib import Path

from tinker_chief.engine.server.serve import API_KEY_ENV, EngineSettings, serve
from tinker_chief.errors import ChiefError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tinker_chief.engine.server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--dtype", choices=["auto", "float32", "bfloat16"], default="auto")
    parser.add_argument("--allow-model-dir", type=Path, action="append", default=[], metavar="PATH")
    parser.add_argument("--session-timeout", type=float, default=None, metavar="SECONDS")
    parser.add_argument("--max-training-clients", type=int, default=None, metavar="N")
    parser.add_argument("--forwarded-allow-ips", default=None, metavar="IPS")
    parser.add_argument("--sampling-memory-gib", type=float, default=None, metavar="GIB")
    parser.add_argument("--exit-with-parent", type=int, default=None, metavar="PID")
    args = parser.parse_args(argv)
    if args.exit_with_parent:
        _exit_with_parent(args.exit_with_parent)
    settings = EngineSettings(
        state_dir=args.state_dir,
        host=args.host,
        port=args.port,
        device=args.device,
        dtype=args.dtype,
        api_key=os.environ.get(API_KEY_ENV) or None,
        allow_model_dirs=tuple(args.allow_model_dir),
        session_timeout=args.session_timeout,
        max_training_clients=args.max_training_clients,
        forwarded_allow_ips=args.forwarded_allow_ips,
        sampling_memory_gib=args.sampling_memory_gib,
    )
    try:
        serve(settings)
    except ChiefError as exc:
        print(f"Error: {exc}", file=sys.stderr, flush=True)
        return exc.exit_code
    return 0


def _exit_with_parent(parent_pid: int, poll_seconds: float = 1.0) -> None:
    """SIGTERM ourselves (the engine's clean shutdown path) once `parent_pid` is no longer our parent."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(poll_seconds)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
