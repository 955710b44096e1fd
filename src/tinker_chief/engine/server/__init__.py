"""The protocol layer of the local engine: what the unmodified `tinker` SDK talks to over HTTP.

`app.py` maps the SDK's routes onto `service.EngineService`, which owns sessions, models and
sampling sessions, hands work to `scheduler.Scheduler` (one compute thread, per-model `seq_id`
order, batched sampling) and parks results in `futures.FutureTable` for long-polling.
`codec.py` converts protobuf/JSON to the backend dataclasses of `engine/backend.py`;
`store.py` keeps runs and checkpoints under `--state-dir`, and `expiry.py` deletes the ones
whose TTL ran out; `billing_ledger.py` counts usage and answers the billing API;
`sdk_usage.py` checks and counts the calling SDKs; `limits.py` caps request
bodies, zstd inflation and read times.

Public API: starting, finding and stopping an engine process (`launcher.py`) and the
`chief engine serve` command (`command.py`). Other capabilities import only the launcher;
everything else reaches the engine over HTTP. Importing this package loads neither torch nor
the app: `python -m tinker_chief.engine.server` loads them when it serves.
"""

from tinker_chief.engine.server.command import serve_command
from tinker_chief.engine.server.launcher import (
    EngineHandle,
    engine_is_up,
    engine_key,
    engine_stats,
    ensure_engine,
    start_engine,
)

__all__ = [
    "EngineHandle",
    "engine_is_up",
    "engine_key",
    "engine_stats",
    "ensure_engine",
    "serve_command",
    "start_engine",
]
