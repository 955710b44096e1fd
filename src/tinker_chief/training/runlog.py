"""A run's directory written: `spec.json`, `metrics.jsonl`, `checkpoints.jsonl`, `run.json`.

The layout and formats are documented with their reader, `tinker_chief.runfiles` (a shared
leaf, so `chief report` and the planner read runs without importing training); `RunLog` adds
the writes. Every write is one `write` of a whole line (append) or an atomic rename (JSON), so
a SIGKILL never leaves a half-written record behind.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tinker_chief.errors import TrainingError
from tinker_chief.paths import ProjectPaths
from tinker_chief.runfiles import RunFiles, run_dirs


@dataclass(frozen=True)
class CheckpointRecord:
    name: str
    step: int  # optimizer steps done when it was saved
    state_path: str  # tinker://.../weights/<name>: adapter + optimizer state (resume)
    sampler_path: str  # tinker://.../sampler_weights/<name>: for sampling and evals
    training_run_id: str | None = None
    final: bool = False
    registry_ref: str | None = None


def _atomic_write_json(path: Path, value: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def _append_line(path: Path, value: dict[str, Any]) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(value, sort_keys=True) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


class RunLog(RunFiles):
    """Reads and writes one run directory; a broken file is a `TrainingError`."""

    def __init__(self, run_dir: Path) -> None:
        super().__init__(run_dir, error=TrainingError)

    @classmethod
    def create(cls, project_dir: Path, spec_json: dict[str, Any], meta: dict[str, Any]) -> RunLog:
        runs = ProjectPaths(project_dir).runs
        runs.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        run_dir, n = runs / f"run-{stamp}", 1
        while True:  # mkdir claims the name atomically: a sweep's runs start in the same second
            try:
                run_dir.mkdir()
                break
            except FileExistsError:
                n += 1
                run_dir = runs / f"run-{stamp}-{n}"
        log = cls(run_dir)
        _atomic_write_json(log.paths.spec, spec_json)
        log.write_status("running", pid=os.getpid(), **meta)
        return log

    @classmethod
    def latest(cls, project_dir: Path) -> RunLog | None:
        dirs = run_dirs(ProjectPaths(project_dir).runs)
        return cls(dirs[-1]) if dirs else None

    def is_active(self) -> bool:
        """Training right now: `running`, and the process that said so (on this machine) is alive."""
        status = self.status()
        pid = status.get("pid")
        if status.get("status") != "running" or not isinstance(pid, int):
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False  # killed mid-run: resumable, not training
        except PermissionError:
            return True  # alive, another user's process
        return True

    @classmethod
    def active(cls, project_dir: Path) -> list[str]:
        """The ids of the project's runs training right now (`is_active`)."""
        runs = ProjectPaths(project_dir).runs
        if not runs.is_dir():
            return []
        return sorted(d.name for d in runs.iterdir() if (d / "run.json").exists() and cls(d).is_active())

    # -- run.json --------------------------------------------------------------------------
    def write_status(self, status: str, **fields: Any) -> None:
        current = self.status()
        current.update(fields, run_id=self.run_id, status=status, updated_at=time.time())
        _atomic_write_json(self.paths.status, current)

    def spec_json(self) -> dict[str, Any]:
        if not self.paths.spec.exists():
            raise TrainingError(f"{self.dir}: spec.json is missing; this run cannot be resumed")
        return self.spec()

    # -- metrics.jsonl ---------------------------------------------------------------------
    def log_metrics(self, step: int, metrics: dict[str, Any]) -> None:
        _append_line(self.paths.metrics, {"step": step, **metrics})

    def truncate_metrics_after(self, step: int) -> None:
        """On resume, drop rows logged after the checkpoint we restart from (they are redone)."""
        rows = self.metrics()
        kept = [r for r in rows if r.get("step", 0) <= step]
        if len(kept) != len(rows):
            tmp = self.paths.metrics.with_suffix(".jsonl.tmp")
            tmp.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in kept))
            os.replace(tmp, self.paths.metrics)

    # -- checkpoints.jsonl -----------------------------------------------------------------
    def add_checkpoint(self, record: CheckpointRecord) -> None:
        _append_line(self.paths.checkpoints, asdict(record))

    def checkpoints(self) -> list[CheckpointRecord]:
        return [CheckpointRecord(**row) for row in self.checkpoint_rows()]

    def last_checkpoint(self) -> CheckpointRecord | None:
        records = self.checkpoints()
        return records[-1] if records else None
