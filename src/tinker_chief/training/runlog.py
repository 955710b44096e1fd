"""A run's directory: `spec.json`, `metrics.jsonl`, `checkpoints.jsonl`, `run.json`.

Layout (`<project>/.chief/runs/<run_id>/`) and file formats are a contract that `chief report`
and `--resume` read:

- `metrics.jsonl`: one object per line, `{"step": int, ...}`. Train rows carry `train/loss`
  (mean NLL per trained token, or the recipe's loss), `train/tokens` (tokens in the batch's
  datums), `prefill/tokens` and `sample/tokens` (what the step's samplers prefilled and sampled:
  RL rollouts, DPO reference log-probs, the KL base), `time/step_s`, `train/tokens_per_s`, `lr`;
  eval rows carry `val/nll`, `val/accuracy` etc. with their own `prefill/tokens`,
  `sample/tokens` and `time/eval_s`; distillation's teacher labelling is a step-0 row of
  `prefill/tokens` and `sample/tokens`. `step` counts optimizer steps done.
- `checkpoints.jsonl`: append-only, one `CheckpointRecord` per save, written only after both
  `save_state` and `save_weights_for_sampler` returned; the last line is where resume starts.
- `run.json`: run id, status (`running`, `interrupted`, `finished`), totals.

Every write is one `write` of a whole line (append) or an atomic rename (JSON), so a
SIGKILL never leaves a half-written record behind.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tinker_chief.errors import TrainingError
from tinker_chief.files import read_json
from tinker_chief.paths import ProjectPaths

# metrics.jsonl keys whose sum is what a run spent (see `RunLog.usage`).
USAGE_KEYS = ("train/tokens", "prefill/tokens", "sample/tokens", "time/step_s", "time/eval_s")


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


def _read_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    rows = []
    for raw in path.read_bytes().splitlines():
        try:
            rows.append(json.loads(raw))
        except (ValueError, RecursionError):  # bad JSON, bad UTF-8, absurd nesting or numbers
            continue  # a torn last line from a crash mid-write: it never counted
    return rows


class RunLog:
    """Reads and writes one run directory."""

    def __init__(self, run_dir: Path) -> None:
        self.dir = run_dir
        self.run_id = run_dir.name

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
        _atomic_write_json(run_dir / "spec.json", spec_json)
        log.write_status("running", pid=os.getpid(), **meta)
        return log

    @classmethod
    def latest(cls, project_dir: Path) -> RunLog | None:
        runs = ProjectPaths(project_dir).runs
        if not runs.is_dir():
            return None
        dirs = sorted((d for d in runs.iterdir() if (d / "run.json").exists()), key=lambda d: d.stat().st_mtime)
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
    def status(self) -> dict[str, Any]:
        path = self.dir / "run.json"
        return read_json(path, error=TrainingError) if path.exists() else {}

    def write_status(self, status: str, **fields: Any) -> None:
        current = self.status()
        current.update(fields, run_id=self.run_id, status=status, updated_at=time.time())
        _atomic_write_json(self.dir / "run.json", current)

    def spec_json(self) -> dict[str, Any]:
        path = self.dir / "spec.json"
        if not path.exists():
            raise TrainingError(f"{self.dir}: spec.json is missing; this run cannot be resumed")
        return read_json(path, error=TrainingError)

    # -- metrics.jsonl ---------------------------------------------------------------------
    @property
    def metrics_path(self) -> Path:
        return self.dir / "metrics.jsonl"

    def log_metrics(self, step: int, metrics: dict[str, Any]) -> None:
        _append_line(self.metrics_path, {"step": step, **metrics})

    def metrics(self) -> list[dict[str, Any]]:
        return _read_lines(self.metrics_path)

    def usage(self, up_to_step: int) -> dict[str, float]:
        """What the run spent up to `up_to_step`: tokens trained, prefilled and sampled, machine seconds
        (training steps plus inline evals), summed over metrics.jsonl's rows."""
        totals = dict.fromkeys(USAGE_KEYS, 0.0)
        for row in self.metrics():
            if isinstance(row.get("step"), int) and row["step"] <= up_to_step:
                for key in USAGE_KEYS:
                    value = row.get(key)
                    totals[key] += value if isinstance(value, (int, float)) else 0.0
        return totals

    def truncate_metrics_after(self, step: int) -> None:
        """On resume, drop rows logged after the checkpoint we restart from (they are redone)."""
        rows = self.metrics()
        kept = [r for r in rows if r.get("step", 0) <= step]
        if len(kept) != len(rows):
            tmp = self.metrics_path.with_suffix(".jsonl.tmp")
            tmp.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in kept))
            os.replace(tmp, self.metrics_path)

    # -- checkpoints.jsonl -----------------------------------------------------------------
    def add_checkpoint(self, record: CheckpointRecord) -> None:
        _append_line(self.dir / "checkpoints.jsonl", asdict(record))

    def checkpoints(self) -> list[CheckpointRecord]:
        return [CheckpointRecord(**row) for row in _read_lines(self.dir / "checkpoints.jsonl")]

    def last_checkpoint(self) -> CheckpointRecord | None:
        records = self.checkpoints()
        return records[-1] if records else None
