"""`Workspace`: a project opened by a command, with its paths, registry and connection."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tinker_chief.connection import BackendChoice, Connection, choose_backend, open_connection
from tinker_chief.paths import ProjectPaths, registry_file
from tinker_chief.planning import CONFIG_FILENAME, Project, load_project
from tinker_chief.registry import Registry


@dataclass(frozen=True)
class Workspace(Project):
    """The project at `root` as a command opened it: `registry_flag` is its `--registry PATH`,
    which wins over every other way of naming the registry."""

    registry_flag: Path | None = None

    @classmethod
    def open(cls, project_dir: str | Path, registry: str | Path | None = None) -> Workspace:
        """Read `<project_dir>/chief.toml`; a missing or invalid file is one line naming it."""
        return cls.of(load_project(project_dir), registry)

    @classmethod
    def of(cls, project: Project, registry: str | Path | None = None) -> Workspace:
        """`project` as a workspace (itself when it is one and no other registry is named)."""
        if isinstance(project, Workspace) and registry is None:
            return project
        return cls(project.root, project.config, Path(registry) if registry else None)

    @property
    def paths(self) -> ProjectPaths:
        return ProjectPaths(self.root)

    @property
    def registry_path(self) -> Path:
        """`--registry`, else `$CHIEF_REGISTRY`, else chief.toml's `registry`, else the default."""
        return registry_file(self.root, self.config.registry, self.registry_flag)

    def open_registry(self, *, create: bool = True, read_only: bool = False) -> Registry:
        return Registry.open(self.registry_path, create=create, read_only=read_only)

    def backend_choice(
        self,
        backend: str | None = None,
        base_url: str | None = None,
    ) -> BackendChoice:
        """Where this project's models are reached: the flags (`--backend`, `--base-url`), the
        environment, then its `[backend]`, then `$TINKER_API_KEY`, then a local engine (the
        precedence of `connection.choose_backend`)."""
        kind, url = self.config.backend.kind, self.config.backend.base_url
        return choose_backend(backend, base_url, project_kind=kind, project_url=url)

    def local_engine_choice(self) -> BackendChoice:
        """A chief engine, never Tinker's cloud (what `--calibrate` measures): the environment's
        URL, else the `[backend]` URL when `[backend]` names a local engine, else one started
        here."""
        section = self.config.backend
        url = section.base_url if section.kind == "local" else None
        return choose_backend(project_kind="local", project_url=url)

    def connect(self, choice: BackendChoice, *, models: Iterable[str] = ()) -> Connection:
        """Open `choice` for the project's base model and `models` (see `connect_at`)."""
        return connect_at(self.root, choice, [self.config.base_model, *models])

    @contextmanager
    def connected(
        self,
        connection: Connection | None = None,
        *,
        backend: str | None = None,
        base_url: str | None = None,
        models: Iterable[str] = (),
    ) -> Iterator[Connection]:
        """`connection` as it is (the caller's to close), else one opened by `backend_choice` and
        closed on leaving: a workflow runs on a connection it is given or on its own."""
        if connection is not None:
            yield connection
            return
        with self.connect(self.backend_choice(backend, base_url), models=models) as opened:
            yield opened


def connect_at(root: Path, choice: BackendChoice, models: Iterable[str]) -> Connection:
    """Open `choice`; an engine started here keeps its state in `root`'s `.chief/engine`, so the
    `tinker://` paths of its checkpoints outlive it."""
    state_dir = ProjectPaths(root).engine_state
    return open_connection(choice, state_dir=state_dir, models=list(dict.fromkeys(models)))


def registry_location(project_dir: Path, registry: str | Path | None = None) -> Path:
    """The registry of `project_dir` for a command that also works without a project: as
    `Workspace.registry_path` when chief.toml is there, else `--registry`, `$CHIEF_REGISTRY`,
    `.chief/registry.db`."""
    if registry is None and (project_dir / CONFIG_FILENAME).is_file():
        return Workspace.open(project_dir).registry_path
    return registry_file(project_dir, flag=registry)
