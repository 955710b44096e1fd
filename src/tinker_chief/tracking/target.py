"""Which tracker a command logs to, resolved once: `--track` > chief.toml `[tracking]`
(`planning.config.TrackingConfig`) > none.

Each field the section leaves unset falls back to the library's own environment variable, then
to a local default that needs no account and no network: MLflow a SQLite store in
`.chief/tracking`, Trackio its own local directory (`$TRACKIO_DIR`), W&B offline mode in
`.chief/tracking/wandb` unless W&B is logged in or `$WANDB_MODE` says otherwise. A tracker that
is not installed is one `ConfigurationError` naming the pip command, raised before any training.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from tinker_chief.errors import ConfigurationError
from tinker_chief.paths import ProjectPaths
from tinker_chief.planning.config import TRACKERS, TrackingConfig

# The module each tracker needs; the extra that installs it has the tracker's name.
MODULES = {"mlflow": "mlflow", "trackio": "trackio", "wandb": "wandb"}


@dataclass(frozen=True)
class TrackingTarget:
    """A tracker backend and where in it a project's runs go."""

    backend: str  # mlflow | trackio | wandb
    project: str  # Trackio / W&B project
    experiment: str  # MLflow experiment
    entity: str | None  # W&B entity
    uri: str | None  # MLflow tracking URI (None: the local default)
    local_dir: Path  # <project>/.chief/tracking

    @property
    def mlflow_uri(self) -> str:
        if self.uri:
            return self.uri
        return "sqlite:///" + (self.local_dir / "mlflow.db").resolve().as_posix()


def resolve_target(
    section: TrackingConfig | None, flag: str | None, *, project_name: str, project_root: Path
) -> TrackingTarget | None:
    """The target `--track` (`flag`) or the `[tracking]` section names; None for none.

    Checks the tracker is installed (one line with the pip command otherwise)."""
    section = section or TrackingConfig()
    backend = flag or section.backend
    if backend not in TRACKERS:
        expected = ", ".join(TRACKERS)
        raise ConfigurationError(f"--track: expected one of {expected}, got {backend!r}")
    if backend == "none":
        return None
    require_installed(backend)
    env = os.environ.get
    wandb_project = env("WANDB_PROJECT") if backend == "wandb" else None
    experiment = section.experiment or env("MLFLOW_EXPERIMENT_NAME") or section.project
    return TrackingTarget(
        backend=backend,
        project=section.project or wandb_project or project_name,
        experiment=experiment or project_name,
        entity=section.entity or env("WANDB_ENTITY"),
        uri=section.uri or env("MLFLOW_TRACKING_URI"),
        local_dir=ProjectPaths(project_root).tracking,
    )


def require_installed(backend: str) -> None:
    """One line with the pip command when `backend`'s library is missing (`none` needs none)."""
    module = MODULES.get(backend)
    if module is not None and importlib.util.find_spec(module) is None:
        raise ConfigurationError(
            f"--track {backend}: the {module} package is not installed; "
            f"pip install 'tinker-chief[{backend}]' (or 'tinker-chief[tracking]' for all three)"
        )
