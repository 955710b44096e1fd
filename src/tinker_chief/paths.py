"""Where a project keeps chief's own files: the `.chief/` layout, written out once.

Every capability that reads or writes under a project's `.chief/` directory asks this module
for the path, so the layout is one table rather than string literals in each package: the
project's directories (`ProjectPaths`), the files of one training run (`RunPaths`) and of one
sweep (`SweepPaths`). A shared leaf: it imports nothing of ours. `tinker_chief.workspace` hands
these out with the rest of an opened project.

    paths = ProjectPaths(Path("my-project"))
    paths.engine_state      # my-project/.chief/engine: a local engine's runs and checkpoints
    paths.run("run-1").metrics   # my-project/.chief/runs/run-1/metrics.jsonl
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
TRACKING = CHIEF_DIR / "tracking"  # experiment trackers' local stores (`--track`)
PLAN_JSON = "plan.json"  # `chief plan`'s machine-readable plan, in the project's root

# The files of one run directory (`.chief/runs/<run_id>/`), documented in `tinker_chief.runfiles`.
RUN_SPEC = "spec.json"
RUN_STATUS = "run.json"
RUN_METRICS = "metrics.jsonl"
RUN_CHECKPOINTS = "checkpoints.jsonl"
RUN_DISTILLED = "distilled.jsonl"
# The state of one sweep directory (`.chief/sweeps/<sweep_id>/`).
SWEEP_STATE = "sweep.json"
SWEEP_TRACKER = "tracker.json"


REGISTRY_ENV = "CHIEF_REGISTRY"


def registry_file(
    root: Path,
    configured: str | Path | None = None,
    flag: str | Path | None = None,
) -> Path:
    """The project's registry database, by the one precedence every command uses: a
    `--registry PATH` flag (`flag`, where a command has one), else `$CHIEF_REGISTRY`, else
    chief.toml's `registry` (`configured`, relative to the project), else `.chief/registry.db`."""
    chosen = flag or os.environ.get(REGISTRY_ENV)
    if chosen:
        return Path(chosen).expanduser()
    return root / (configured if configured is not None else REGISTRY)


@dataclass(frozen=True)
class RunPaths:
    """The files of one training run directory (`.chief/runs/<run_id>/`)."""

    dir: Path

    @property
    def run_id(self) -> str:
        return self.dir.name

    @property
    def spec(self) -> Path:
        """The run's spec as it started (resume checks it against the plan)."""
        return self.dir / RUN_SPEC

    @property
    def status(self) -> Path:
        """Run id, status (`running`, `interrupted`, `finished`) and totals."""
        return self.dir / RUN_STATUS

    @property
    def metrics(self) -> Path:
        """One JSON object per logged step: train and eval metrics."""
        return self.dir / RUN_METRICS

    @property
    def checkpoints(self) -> Path:
        """One line per saved checkpoint, append-only; the last is where resume starts."""
        return self.dir / RUN_CHECKPOINTS

    @property
    def distilled(self) -> Path:
        """Prompt distillation's teacher labels, drawn once so a resumed run trains on the same."""
        return self.dir / RUN_DISTILLED


@dataclass(frozen=True)
class SweepPaths:
    """The files of one sweep directory (`.chief/sweeps/<sweep_id>/`)."""

    dir: Path

    @property
    def state(self) -> Path:
        """The grid, the run each point trains in, statuses and the summary."""
        return self.dir / SWEEP_STATE

    @property
    def tracker(self) -> Path:
        """The sweep's group in each experiment tracker (`--track`), so `--resume` continues it."""
        return self.dir / SWEEP_TRACKER


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
    def plan_json(self) -> Path:
        """The plan `chief plan` wrote (its recommendations, estimates and prices)."""
        return self.root / PLAN_JSON

    @property
    def runs(self) -> Path:
        """One directory per training run: spec, metrics.jsonl, checkpoints.jsonl, status."""
        return self.root / RUNS

    def run(self, run_id: str) -> RunPaths:
        return RunPaths(self.runs / run_id)

    @property
    def sweeps(self) -> Path:
        """One directory per sweep: its grid and which run trains each point (`sweep.json`)."""
        return self.root / SWEEPS

    def sweep(self, sweep_id: str) -> SweepPaths:
        return SweepPaths(self.sweeps / sweep_id)

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

    @property
    def tracking(self) -> Path:
        """Experiment trackers' local stores: MLflow's SQLite, W&B's offline runs (`--track`)."""
        return self.root / TRACKING
