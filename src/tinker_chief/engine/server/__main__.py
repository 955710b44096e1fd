"""`python -m tinker_chief.engine.server`: the engine process the launcher starts.

Same flags as `chief engine serve`; the API key comes only from the environment
(`CHIEF_ENGINE_API_KEY`) so it never appears in a process listing.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from tinker_chief.engine.server.main import API_KEY_ENV, EngineSettings, serve
from tinker_chief.errors import ChiefError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tinker_chief.engine.server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--dtype", choices=["auto", "float32", "bfloat16"], default="auto")
    args = parser.parse_args(argv)
    settings = EngineSettings(state_dir=args.state_dir, host=args.host, port=args.port, device=args.device,
                              dtype=args.dtype, api_key=os.environ.get(API_KEY_ENV) or None)
    try:
        serve(settings)
    except ChiefError as exc:
        print(f"Error: {exc}", file=sys.stderr, flush=True)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
