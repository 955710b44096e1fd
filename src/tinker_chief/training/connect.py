"""Choosing and reaching the backend: the local engine or Tinker's cloud, always via the SDK.

`open_backend` is the one place that decides where training (and the demo's evals) go:
`--base-url` wins; else `--backend tinker` (or a set `TINKER_API_KEY`) means Tinker's cloud;
else a local engine is started with its state under the project's `.chief/engine`, so the
`tinker://` paths it hands out stay resolvable by later `chief eval` runs. Every failure
(missing key, unreachable URL, unknown model) is raised before any training starts.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

from tinker_chief.errors import ConfigurationError, EngineError
from tinker_chief.evals.connection import LOCAL_API_KEY

BackendName = Literal["local", "tinker"]


@dataclass
class Backend:
    """An open SDK connection and what it points at (recorded in the registry)."""

    service: Any  # tinker.ServiceClient
    kind: BackendName
    base_url: str | None
    api_key: str | None

    def sampling_client(self, model_path: str | None = None, base_model: str | None = None) -> Any:
        return self.service.create_sampling_client(model_path=model_path, base_model=base_model).result()


def resolve_backend_kind(backend: str | None, base_url: str | None) -> BackendName:
    if backend not in (None, "local", "tinker"):
        raise ConfigurationError(f"--backend: expected `local` or `tinker`, got {backend!r}")
    if backend == "tinker" or (backend is None and base_url is None and os.environ.get("TINKER_API_KEY")):
        if not os.environ.get("TINKER_API_KEY"):
            raise ConfigurationError(
                "--backend tinker needs TINKER_API_KEY in the environment (get one from the Tinker "
                "console); use --backend local to train on the built-in engine instead"
            )
        return "tinker"
    return "local"


def check_reachable(base_url: str, timeout: float = 3.0) -> None:
    """Fail fast with a clear sentence instead of letting the SDK retry a dead URL for minutes."""
    parsed = urlparse(base_url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ConfigurationError(f"--base-url: expected http(s)://host:port, got {base_url!r}")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=timeout):
            pass
    except OSError as exc:
        raise EngineError(f"cannot reach the training backend at {base_url}: {exc.strerror or exc}") from None


def check_model_served(backend: Backend, base_model: str, where: str) -> None:
    """Refuse a plan whose base model the backend does not serve, listing what it does serve."""
    import tinker

    try:
        rest = tinker.RestClient(base_url=backend.base_url, api_key=backend.api_key)
        capabilities = rest.get_server_capabilities().result()
        models = [m.model_name for m in capabilities.supported_models if m.model_name]
    except Exception as exc:  # the SDK raises its own hierarchy; the message is what matters
        raise EngineError(f"{where}: could not list the served models: {exc}") from None
    wanted = base_model.lower()
    if models and not any(m.lower() == wanted for m in models):
        raise ConfigurationError(
            f"the plan's base model {base_model!r} is not served by {where}; available: {', '.join(models)}"
        )


@contextmanager
def open_backend(
    project_dir: Path,
    backend: str | None = None,
    base_url: str | None = None,
    base_model: str | None = None,
) -> Iterator[Backend]:
    """Yield a connected `Backend`; a local engine started here is stopped on exit.

    The connection itself is the evals capability's (`evals.connection`), so training and
    `chief eval` resolve backends identically; this adds the checks training needs up front.
    """
    from tinker_chief.evals.connection import Connection, start_local, started_engine_key

    kind = resolve_backend_kind(backend, base_url)
    if kind == "tinker":
        connection, where = Connection(base_url, os.environ["TINKER_API_KEY"]), base_url or "Tinker's cloud"
    elif base_url:
        check_reachable(base_url)
        key = os.environ.get("CHIEF_ENGINE_API_KEY") or started_engine_key(base_url) or LOCAL_API_KEY
        connection, where = Connection(base_url, key), base_url
    else:
        models = [base_model] if base_model else []
        connection, where = start_local(project_dir / ".chief" / "engine", models=models), "the local engine"
    try:
        opened = Backend(connection.service_client(), kind, connection.base_url, connection.api_key)
        if base_model:
            check_model_served(opened, base_model, where)
        yield opened
    finally:
        connection.close()
