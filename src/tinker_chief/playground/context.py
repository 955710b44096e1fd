"""What the playground knows of its project: chief.toml when there is one, the registry, the rules.

`load_context(project_dir)` reads the project the way `chief compare` does (the registry by the
one precedence of `paths.registry_file`, the `[gate]` rules that decide better/worse and the
paired test's settings) but also works in a directory without chief.toml: then only base
models and `tinker://` paths are offered, and there is nothing to diff.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tinker_chief.paths import ProjectPaths, registry_file

if TYPE_CHECKING:
    from tinker_chief.connection import BackendChoice
    from tinker_chief.models import RendererChoice
    from tinker_chief.planning import Project
    from tinker_chief.registry import GateRules, Registry

# Conversations saved from the chat land here unless the user picks one of the suite's files.
SAVED_FILE = Path("playground") / "conversations.jsonl"


@dataclass
class PlaygroundContext:
    root: Path
    project: Project | None
    registry_path: Path
    rules: GateRules = field(repr=False)

    @property
    def name(self) -> str:
        return self.project.config.name if self.project else self.root.resolve().name

    @property
    def base_model(self) -> str | None:
        return self.project.config.base_model if self.project else None

    @property
    def renderer_choice(self) -> RendererChoice | None:
        """The project's renderer for its base model: what its models were trained on, so what
        they are sent."""
        return self.project.renderer_choice if self.project else None

    @property
    def paths(self) -> ProjectPaths:
        return ProjectPaths(self.root)

    def open_registry(self) -> Registry | None:
        """The registry read-only, or None when the project has none yet (never created here).
        SQLite connections stay in their thread: callers open one per request."""
        if not self.registry_path.is_file():
            return None
        from tinker_chief.registry import Registry

        return Registry.open(self.registry_path, create=False, read_only=True)

    def save_targets(self) -> list[str]:
        """Where a conversation may be saved (relative to the project): the playground's own file,
        then each jsonl task's data file of the eval suite (to grow that eval set)."""
        targets = [SAVED_FILE.as_posix()]
        if self.project is not None:
            for task in self.project.config.eval_suite.tasks:
                local = task.data and not Path(task.data).is_absolute()
                if task.kind == "jsonl" and local and task.data not in targets:
                    targets.append(str(task.data))
        return targets

    def backend_choice(self, backend: str | None, base_url: str | None) -> BackendChoice:
        """Where the chat's models are reached: a project's by `Workspace.backend_choice` (its
        `[backend]` in the one precedence), a directory without chief.toml's by that precedence
        without a `[backend]`."""
        from tinker_chief.connection import choose_backend
        from tinker_chief.workspace import Workspace

        if self.project is None:
            return choose_backend(backend, base_url)
        return Workspace.of(self.project).backend_choice(backend, base_url)


def load_context(project_dir: Path) -> PlaygroundContext:
    """The project at `project_dir` (chief.toml optional; a broken one is a one-line error)."""
    from tinker_chief.planning import CONFIG_FILENAME, load_project
    from tinker_chief.registry import GateRules

    root = Path(project_dir)
    if (root / CONFIG_FILENAME).is_file():
        project = load_project(root)
        return PlaygroundContext(root, project, project.registry_path, project.config.gate)
    return PlaygroundContext(root, None, registry_file(root), GateRules())
