"""Where a project keeps chief's own files: the `.chief/` layout, written out once.

Every capability that reads or writes under a project's `.chief/` directory asks this module
for the path, so the layout is one table rather than string literals in each package. A
shared leaf: it imports nothing of ours.

    paths = ProjectPaths(Path("my-project"))
    paths.engine_state      # my-project/.chief/engine: a local engine's runs and checkpoints
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CHIEF_DIR = Path(".chief")
# Relative to a project (or to the current directory where a command has no project).
ENGINE_STATE = CHIEF_DIR / "engine"
RUNS = CHIEF_DIR / "runs"
SWEEPS = CHIEF_DIR / "sweeps"
REGISTRY = CHIEF_DIR / "registry.db"
EVAL_CACHE = CHIEF_DIR / "eval-cache"
EVAL_OFFLINE = CHIEF_DIR / "eval-offline"
INSPECT_LOGS = CHIEF_DIR / "inspect-logs"
BENCHMARKS = CHIEF_DIR / "benchmarks"


REGISTRY_ENV = "CHIEF_REGISTRY"


def registry_file(root: Path, configured: str | Path | None = None) -> Path:
    """The project's registry database, by the one precedence every command uses:
    `$CHIEF_REGISTRY`, else chief.toml's `registry` (relative to the project), else
    `.chief/registry.db`. A `--registry PATH` flag, where a command has one, wins over all three."""
    chosen = os.environ.get(REGISTRY_ENV)
    if chosen:
        return Path(chosen).expanduser()
    return root / (configured if configured is not None else REGISTRY)


@dataclass(frozen=True)
class ProjectPaths:
    """The `.chief/` paths of the project at `root`."""

    root: Path

    @property
    def chief_dir(self) -> Path:
        return self.root / CHIEF_DIR

    @property
    def engine_state(self) -> Path:
        """A local engine's state (runs, checkpoints), so `tinker://` paths outlive the engine."""
        return self.root / ENGINE_STATE

    @property
    def runs(self) -> Path:
        """One directory per training run: spec, metrics.jsonl, checkpoints.jsonl, status."""
        return self.root / RUNS

    @property
    def sweeps(self) -> Path:
        """One directory per sweep: its grid and which run trains each point (`sweep.json`)."""
        return self.root / SWEEPS

    @property
    def eval_cache(self) -> Path:
        """Finished eval samples, so an interrupted `chief eval` resumes."""
        return self.root / EVAL_CACHE

    @property
    def eval_offline(self) -> Path:
        return self.root / EVAL_OFFLINE

    @property
    def inspect_logs(self) -> Path:
        return self.root / INSPECT_LOGS

    @property
    def benchmarks(self) -> Path:
        """Benchmark rows staged for offline use."""
        return self.root / BENCHMARKS
