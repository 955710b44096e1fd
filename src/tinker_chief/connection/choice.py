"""The backend precedence (see the package docstring) and the one rule for which key to send."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

from tinker_chief.errors import ConfigurationError

BackendKind = Literal["local", "tinker"]
BACKEND_KINDS: tuple[BackendKind, ...] = ("local", "tinker")
# The SDK insists on a `tml-` key even for localhost; an engine without a key ignores its value.
LOCAL_API_KEY = "tml-local-chief"
URL_ENV_VARS = ("CHIEF_ENGINE_URL", "TINKER_BASE_URL")


@dataclass(frozen=True)
class BackendChoice:
    """Where a command goes. `base_url` None: Tinker's default URL (tinker) or an engine started
    here (local). `decided_by` names the rule that chose, for messages and `--verbose` output."""

    kind: BackendKind
    base_url: str | None
    decided_by: str

    @property
    def starts_engine(self) -> bool:
        return self.kind == "local" and self.base_url is None

    def describe(self) -> str:
        if self.kind == "tinker":
            return f"Tinker's cloud ({self.base_url})" if self.base_url else "Tinker's cloud"
        return f"the engine at {self.base_url}" if self.base_url else "a local engine started here"


def _checked_kind(kind: str | None, where: str) -> BackendKind | None:
    if kind is None:
        return None
    if kind not in BACKEND_KINDS:
        raise ConfigurationError(f"{where}: expected `local` or `tinker`, got {kind!r}")
    return kind


def choose_backend(
    backend: str | None = None,
    base_url: str | None = None,
    *,
    project_kind: str | None = None,
    project_url: str | None = None,
) -> BackendChoice:
    """Apply the precedence: flags, environment, the project's `[backend]`, `$TINKER_API_KEY`,
    a local engine. A layer that gives only a URL means an engine at that URL (kind `local`);
    `tinker` with a URL is Tinker's service at that address."""
    layers: list[tuple[str, BackendKind | None, str | None]] = [
        (
            "--backend" if backend else "--base-url",
            _checked_kind(backend, "--backend"),
            base_url or None,
        ),
    ]
    env_var = next((name for name in URL_ENV_VARS if os.environ.get(name)), None)
    layers.append((f"${env_var}", None, os.environ.get(env_var) if env_var else None))
    layers.append(
        (
            "[backend] in chief.toml",
            _checked_kind(project_kind, "[backend] kind"),
            project_url or None,
        )
    )
    layers.append(("$TINKER_API_KEY", "tinker" if os.environ.get("TINKER_API_KEY") else None, None))
    for decided_by, kind, url in layers:
        if kind is not None or url is not None:
            return BackendChoice(kind or "local", url, decided_by)
    return BackendChoice("local", None, "default")


def api_key_for(choice: BackendChoice, explicit: str | None = None) -> str | None:
    """The key to send, by the one rule in the package docstring. None for an engine started here
    (it hands out its own). Tinker's cloud without a key is a `ConfigurationError` that says how."""
    if explicit:
        return explicit
    if choice.kind == "tinker":
        key = os.environ.get("TINKER_API_KEY")
        if not key:
            raise ConfigurationError(
                f"Tinker's cloud (chosen by {choice.decided_by}) needs TINKER_API_KEY in the "
                "environment (get one from the Tinker console); use --backend local for the "
                "built-in engine instead"
            )
        return key
    if choice.base_url is None:
        return None
    return (
        os.environ.get("CHIEF_ENGINE_API_KEY")
        or started_engine_key(choice.base_url)
        or os.environ.get("TINKER_API_KEY")
        or LOCAL_API_KEY
    )


def started_engine_key(base_url: str) -> str | None:
    """The key of the engine chief started at exactly `base_url` (this user's, still running,
    proven by the server there), else None; EngineError if a server there cannot prove it."""
    try:
        from tinker_chief.engine.server.launcher import engine_key
    except ImportError:  # no local engine installed: nothing chief started
        return None
    return engine_key(base_url)
