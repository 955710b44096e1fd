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
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from tinker_chief.errors import TrainingError
from tinker_chief.files import JsonObject
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

    @classmethod
    def from_row(cls, row: Mapping[str, object], where: Path) -> CheckpointRecord:
        """A `checkpoints.jsonl` row read back; a field of the wrong type (a hand-edited file)
        is a `TrainingError` naming the file and the field."""

        def text(key: str) -> str:
            value = row.get(key)
            if not isinstance(value, str):
                raise _bad_field(where, key, "a string", value)
            return value

        def optional_text(key: str) -> str | None:
            value = row.get(key)
            if value is not None and not isinstance(value, str):
                raise _bad_field(where, key, "a string or null", value)
            return value

        step, final = row.get("step"), row.get("final", False)
        if not isinstance(step, int) or isinstance(step, bool):
            raise _bad_field(where, "step", "an integer", step)
        if not isinstance(final, bool):
            raise _bad_field(where, "final", "true or false", final)
        return cls(
            name=text("name"),
            step=step,
            state_path=text("state_path"),
            sampler_path=text("sampler_path"),
            training_run_id=optional_text("training_run_id"),
            final=final,
            registry_ref=optional_text("registry_ref"),
        )


def _bad_field(where: Path, key: str, expected: str, got: object) -> TrainingError:
    found = "nothing" if got is None else type(got).__name__
    return TrainingError(
        f'{where}: a checkpoint\'s field "{key}": expected {expected}, got {found}'
    )


def _atomic_write_json(path: Path, value: object) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def _append_line(path: Path, value: Mapping[str, object]) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(value, sort_keys=True) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


class RunLog(RunFiles):
    """Reads and writes one run directory; a broken file is a `TrainingError`."""

    def __init__(self, run_dir: Path) -> None:
        super().__init__(run_dir, error=TrainingError)

    @classmethod
    def create(
        cls, project_dir: Path, spec_json: Mapping[str, object], meta: Mapping[str, object]
    ) -> RunLog:
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
        """Training right now: `running`, and the process that said so (on this machine) is
        alive."""
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
        return sorted(
            d.name for d in runs.iterdir() if (d / "run.json").exists() and cls(d).is_active()
        )

    # -- run.json --------------------------------------------------------------------------
    def write_status(self, status: str, **fields: object) -> None:
        current = self.status()
        current.update(fields, run_id=self.run_id, status=status, updated_at=time.time())
        _atomic_write_json(self.paths.status, current)

    def spec_json(self) -> JsonObject:
        if not self.paths.spec.exists():
            raise TrainingError(f"{self.dir}: spec.json is missing; this run cannot be resumed")
        return self.spec()

    # -- metrics.jsonl ---------------------------------------------------------------------
    def log_metrics(self, step: int, metrics: Mapping[str, float]) -> None:
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
        return [
            CheckpointRecord.from_row(row, self.paths.checkpoints) for row in self.checkpoint_rows()
        ]

    def last_checkpoint(self) -> CheckpointRecord | None:
        records = self.checkpoints()
        return records[-1] if records else None
