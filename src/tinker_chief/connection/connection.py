"""An open SDK connection to the chosen backend, and the checks made before any work starts."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict
from urllib.parse import urlparse

from tinker_chief.connection.choice import LOCAL_API_KEY, BackendChoice, BackendKind, api_key_for
from tinker_chief.errors import ConfigurationError, EngineError
from tinker_chief.paths import ENGINE_STATE

if TYPE_CHECKING:
    import tinker

    from tinker_chief.engine.server.launcher import EngineHandle


class EngineOptions(TypedDict, total=False):
    """`start_engine`'s options a caller may set on an engine started here (its state directory
    is `open_connection`'s `state_dir`)."""

    host: str
    port: int | None
    device: str
    dtype: str
    api_key: str | None
    log_file: Path | None
    ready_timeout: float
    allow_model_dirs: Iterable[Path]
    session_timeout: float | None
    max_training_clients: int | None
    sampling_memory_gib: float | None


@dataclass
class Connection:
    """A connected backend. `close()` ends the SDK session, and stops the engine only if this
    connection started it."""

    choice: BackendChoice
    base_url: str | None
    api_key: str = field(repr=False)
    started_engine: EngineHandle | None = field(default=None, repr=False)
    _service_client: tinker.ServiceClient | None = field(default=None, repr=False)
    _run_clients: list[tinker.ServiceClient] = field(default_factory=list, repr=False)

    @property
    def kind(self) -> BackendKind:
        return self.choice.kind

    @property
    def where(self) -> str:
        if self.started_engine is not None:
            return f"the local engine at {self.base_url}"
        return self.choice.describe()

    @cached_property
    def engine_precision(self) -> str | None:
        """The precision a chief engine computes in ("float32", "bfloat16-autocast"), recorded with
        eval results; None for Tinker's cloud or an engine that does not say."""
        if self.kind == "tinker" or self.base_url is None:
            return None
        from tinker_chief.engine.server.launcher import engine_stats

        return (engine_stats(self.base_url, self.api_key) or {}).get("precision")

    def service_client(self) -> tinker.ServiceClient:
        """The `tinker.ServiceClient`, created once per connection."""
        if self._service_client is None:
            import tinker

            self._service_client = tinker.ServiceClient(
                api_key=self.api_key, base_url=self.base_url
            )
        return self._service_client

    def run_client(self, user_metadata: dict[str, str]) -> tinker.ServiceClient:
        """A `tinker.ServiceClient` of its own, so one training run's work is one SDK session that
        billing reports apart from the command's other work (`session_id_of`); `close_run_client`
        ends it, `close()` any left open."""
        import tinker

        client = tinker.ServiceClient(
            api_key=self.api_key, base_url=self.base_url, user_metadata=user_metadata
        )
        self._run_clients.append(client)
        return client

    def scoped(self, user_metadata: dict[str, str]) -> Connection:
        """This backend through a `run_client` of its own: what is done through the returned
        connection (one candidate's suite in `chief select`) is one SDK session that billing
        reports apart. `close_run_client(scoped.service_client())`, or `close()`, ends it."""
        client = self.run_client(user_metadata)
        return Connection(self.choice, self.base_url, self.api_key, _service_client=client)

    def close_run_client(self, client: tinker.ServiceClient) -> None:
        if client in self._run_clients:
            self._run_clients.remove(client)
            _close_quietly(client)

    def session_id(self) -> str | None:
        """The SDK session of the connection's own service client, once it opened one."""
        return session_id_of(self._service_client) if self._service_client is not None else None

    def rest_client(self) -> tinker.RestClient:
        """A `tinker.RestClient` on this backend (listings, checkpoint TTLs and deletion)."""
        import tinker

        return tinker.RestClient(base_url=self.base_url, api_key=self.api_key)

    def admin_client(self) -> tinker.AdminClient:
        """A `tinker.AdminClient` on this backend (billing usage; on the cloud it needs a role)."""
        import tinker

        return tinker.AdminClient(base_url=self.base_url, api_key=self.api_key)

    def sampling_client(
        self, model_path: str | None = None, base_model: str | None = None
    ) -> tinker.SamplingClient:
        return (
            self.service_client()
            .create_sampling_client(model_path=model_path, base_model=base_model)
            .result()
        )

    def served_models(self) -> list[str]:
        """The base models the backend serves, as its capabilities list them."""
        try:
            capabilities = self.rest_client().get_server_capabilities().result()
        except Exception as exc:  # the SDK raises its own hierarchy; the message is what matters
            raise EngineError(f"{self.where}: could not list the served models: {exc}") from None
        return [m.model_name for m in capabilities.supported_models if m.model_name]

    def check_serves(self, model: str, role: str = "the base model") -> None:
        """Refuse a model the backend does not serve, listing what it does serve. `role` names
        what the model is for in the error (a judge is no base model)."""
        models = self.served_models()
        wanted = model.lower()
        if models and not any(m.lower() == wanted for m in models):
            raise ConfigurationError(
                f"{role} {model!r} is not served by {self.where}; available: {', '.join(models)}"
            )

    def close(self) -> None:
        for client in [
            *self._run_clients,
            *([self._service_client] if self._service_client else []),
        ]:
            # Ends the SDK sessions first, so they stop heartbeating into an engine we stop next.
            _close_quietly(client)
        self._run_clients, self._service_client = [], None
        if self.started_engine is not None:
            self.started_engine.stop()
            self.started_engine = None

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _close_quietly(client: tinker.ServiceClient) -> None:
    with contextlib.suppress(Exception):  # closing is best effort; the engine may be gone already
        client.close("success").result(timeout=10)


def session_id_of(client: tinker.ServiceClient) -> str | None:
    """The SDK session a `ServiceClient` opened, None before its first request opened one (asking
    the public `holder` then would open a session just to name it)."""
    holder = getattr(client, "_session_holder", None)
    return getattr(holder, "_session_id", None) if holder is not None else None


def check_reachable(base_url: str, decided_by: str, timeout: float = 3.0) -> None:
    """Fail fast with a clear sentence instead of letting the SDK retry a dead URL for minutes."""
    expected = f"{decided_by}: expected a URL http(s)://host:port, got {base_url!r}"
    try:
        parsed = urlparse(base_url)
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
    except ValueError:  # a port past 65535, a broken IPv6 address
        raise ConfigurationError(expected) from None
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ConfigurationError(expected)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=timeout):
            pass
    except OSError as exc:
        raise EngineError(
            f"cannot reach the backend at {base_url} (from {decided_by}): {exc.strerror or exc}"
        ) from None


def open_connection(
    choice: BackendChoice,
    *,
    state_dir: Path | None = None,
    models: Iterable[str] = (),
    api_key: str | None = None,
    engine_options: EngineOptions | None = None,
) -> Connection:
    """Connect as `choice` says. An engine started here keeps its state in `state_dir` (default:
    `.chief/engine` of the current directory) and may serve the local model directories among
    `models`. A missing key or an unreachable URL fails here, before any work starts."""
    key = api_key_for(choice, api_key)
    refuse_cloud_only_here(choice, models)
    if choice.base_url is not None:
        check_reachable(choice.base_url, choice.decided_by)
    if not choice.starts_engine:
        return Connection(choice, choice.base_url, key or LOCAL_API_KEY)
    handle = _start_engine(
        Path(state_dir) if state_dir is not None else Path.cwd() / ENGINE_STATE,
        models,
        engine_options or {},
    )
    return Connection(choice, handle.base_url, handle.api_key_for_clients, handle)


def refuse_cloud_only_here(choice: BackendChoice, models: Iterable[str]) -> None:
    """A model with no local weights (Tinker's lineup, a hub id) is never sent to an engine started
    here: one error saying where it runs, before the engine starts, never a silent switch."""
    if not choice.starts_engine:
        return
    from tinker_chief.errors import ModelNotFoundError
    from tinker_chief.models import cloud_only_message, resolve_model

    for name in models:
        if not name or name.startswith("tinker://"):
            continue
        try:
            cloud = resolve_model(name).source == "cloud"
        except ModelNotFoundError:
            continue  # the engine names what it serves instead
        if cloud:
            raise ConfigurationError(cloud_only_message(name))


def _start_engine(
    state_dir: Path, models: Iterable[str], engine_options: EngineOptions
) -> EngineHandle:
    try:
        from tinker_chief.engine.server.launcher import start_engine
    except ImportError as exc:
        raise EngineError(
            "no backend: set TINKER_API_KEY for Tinker's cloud, pass --base-url, or install the "
            f"local engine (its launcher could not be imported: {exc})"
        ) from None
    from tinker_chief.models import local_model_dirs

    options: EngineOptions = {
        "allow_model_dirs": local_model_dirs(m for m in models if m),
        **engine_options,
    }
    return start_engine(state_dir=state_dir, **options)
