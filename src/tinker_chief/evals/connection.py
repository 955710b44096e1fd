"""Where evals reach models: Tinker's cloud, a running engine, or a local engine we start.

Resolution order (the same for `chief eval-offline`, `chief eval` and the Inspect provider):
an explicit `base_url`; `$CHIEF_ENGINE_URL` / `$TINKER_BASE_URL`; Tinker's cloud when
`$TINKER_API_KEY` is set; otherwise a local engine started through the engine's launcher with
its state in `.chief/engine` of the current directory, so `tinker://` paths written by
`chief train` in the same project resolve. The launcher is the only engine code evals import.

Keys: an explicit one wins; for a URL where chief itself started an engine, that engine's own
random key (found through the launcher, same user only); then `$TINKER_API_KEY`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from tinker_chief.errors import EngineError

# The SDK insists on a `tml-` key even for localhost; local engines ignore its value.
LOCAL_API_KEY = "tml-local-chief"
DEFAULT_STATE_DIR = Path(".chief") / "engine"


@dataclass
class Connection:
    """A resolved backend. `close()` stops the engine only if this connection started it."""

    base_url: str | None
    api_key: str
    started_engine: Any | None = None
    _service_client: Any | None = field(default=None, repr=False)

    @property
    def backend(self) -> str:
        if self.started_engine is not None:
            return "local-engine"
        return "tinker-cloud" if self.base_url is None else "engine"

    @cached_property
    def engine_precision(self) -> str | None:
        """The precision a chief engine computes in ("float32", "bfloat16-autocast"), recorded with
        eval results; None for Tinker's cloud or an engine that does not say."""
        if self.base_url is None:
            return None
        from tinker_chief.engine.server.launcher import engine_stats

        return (engine_stats(self.base_url, self.api_key) or {}).get("precision")

    def service_client(self) -> Any:
        if self._service_client is None:
            import tinker

            kwargs: dict[str, Any] = {"api_key": self.api_key}
            if self.base_url is not None:
                kwargs["base_url"] = self.base_url
            self._service_client = tinker.ServiceClient(**kwargs)
        return self._service_client

    def close(self) -> None:
        if self._service_client is not None:
            # Ends the SDK session first, so it stops heartbeating into an engine we stop next.
            with contextlib.suppress(Exception):  # closing is best effort; the engine may be gone already
                self._service_client.close("success").result(timeout=10)
            self._service_client = None
        if self.started_engine is not None:
            self.started_engine.stop()
            self.started_engine = None

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def env_base_url() -> str | None:
    return os.environ.get("CHIEF_ENGINE_URL") or os.environ.get("TINKER_BASE_URL") or None


def connect(
    base_url: str | None = None,
    api_key: str | None = None,
    state_dir: str | Path | None = None,
    engine_options: dict[str, Any] | None = None,
    models: Iterable[str] = (),
) -> Connection:
    """Resolve the backend as described in the module docstring. `models`: the names the caller
    will use, so that a local engine started here may serve the local directories among them."""
    base_url = base_url or env_base_url()
    key = api_key or os.environ.get("TINKER_API_KEY")
    if base_url is not None:
        return Connection(base_url, api_key or started_engine_key(base_url) or key or LOCAL_API_KEY)
    if key:
        return Connection(None, key)
    return start_local(state_dir, engine_options, models)


def started_engine_key(base_url: str) -> str | None:
    """The key of the engine chief started at `base_url` (this user's, still running), else None."""
    try:
        from tinker_chief.engine.server.launcher import engine_key
    except ImportError:  # no local engine installed: nothing chief started
        return None
    return engine_key(base_url)


def start_local(state_dir: str | Path | None = None, engine_options: dict[str, Any] | None = None,
                models: Iterable[str] = ()) -> Connection:
    try:
        from tinker_chief.engine.server.launcher import start_engine
    except ImportError as exc:
        raise EngineError(
            "no backend: set TINKER_API_KEY for Tinker's cloud, pass --base-url, or install the local "
            f"engine (its launcher could not be imported: {exc})"
        ) from None
    from tinker_chief.models import local_model_dirs

    directory = Path(state_dir) if state_dir is not None else Path.cwd() / DEFAULT_STATE_DIR
    options = {"allow_model_dirs": local_model_dirs(models), **(engine_options or {})}
    handle = start_engine(state_dir=directory, **options)
    return Connection(handle.base_url, getattr(handle, "api_key_for_clients", None) or LOCAL_API_KEY, handle)
