"""Where models are reached: one backend choice and one connection for every command.

`chief train`, `chief eval`, `chief eval-offline`, the Inspect provider and the demo all ask
`choose_backend` where to go and `open_connection` to get there, so a project that trains on
one backend evaluates on the same one. Precedence, first that says anything wins:

1. flags: `--backend local|tinker` and/or `--base-url URL` (Inspect: `--model-base-url`);
2. environment: `$CHIEF_ENGINE_URL`, else `$TINKER_BASE_URL` (an engine at that URL);
3. the project's `[backend]` section in chief.toml (`kind`, `base_url`);
4. `$TINKER_API_KEY` set: Tinker's cloud;
5. a local engine started for the command, its state in the project's `.chief/engine`.

Two backend names: `local` (chief's engine, started here or running at a URL) and `tinker`
(Tinker's cloud). One key rule (`api_key_for`): an explicit key; for Tinker's cloud
`$TINKER_API_KEY` (required); for an engine at a URL `$CHIEF_ENGINE_API_KEY`, else the key of
the engine chief itself started at exactly that loopback address (same user only, and only once
the server there proved it holds the key), else `$TINKER_API_KEY`; an engine started here hands
its own random key. Everything goes through the `tinker` SDK; the only
engine code imported is its launcher.
"""

from tinker_chief.connection.choice import (
    LOCAL_API_KEY,
    BackendChoice,
    BackendKind,
    api_key_for,
    choose_backend,
)
from tinker_chief.connection.connection import (
    Connection,
    open_connection,
    refuse_cloud_only_here,
    session_id_of,
)

__all__ = [
    "LOCAL_API_KEY",
    "BackendChoice",
    "BackendKind",
    "Connection",
    "api_key_for",
    "choose_backend",
    "open_connection",
    "refuse_cloud_only_here",
    "session_id_of",
]
