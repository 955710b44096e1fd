"""A training run's files read back: the one reader of what `training` writes.

Layout (`<project>/.chief/runs/<run_id>/`, names in `tinker_chief.paths.RunPaths`) and file
formats are a contract that `chief report`, `chief plan`'s calibration, `chief select`, sweeps
and `--resume` read:

- `metrics.jsonl`: one object per line, `{"step": int, ...}`. Train rows carry `train/loss`
  (mean NLL per trained token, or the recipe's loss), `train/tokens` (tokens in the batch's
  datums), `prefill/tokens` and `sample/tokens` (what the step's samplers prefilled and sampled:
  RL rollouts, DPO reference log-probs, the KL base), `time/step_s`, `train/tokens_per_s`, `lr`;
  eval rows carry `val/nll`, `val/accuracy` etc. with their own `prefill/tokens`,
  `sample/tokens` and `time/eval_s`; distillation's teacher labelling is a step-0 row of
  `prefill/tokens` and `sample/tokens`. `step` counts optimizer steps done.
- `checkpoints.jsonl`: append-only, one checkpoint record per save, written only after both
  `save_state` and `save_weights_for_sampler` returned; the last line is where resume starts.
- `run.json`: run id, status (`running`, `interrupted`, `finished`), totals, and `trackers`:
  the run's mirror in each experiment tracker (`--track`: `{backend: link}`), which every
  registry version the run registers carries in its config too.
- `spec.json`: the run's spec as it started.

A line of a JSONL file that is not a JSON object (a line torn by a crash mid-write) is skipped,
as training itself never counted it; a missing file reads as empty. A broken `run.json` or
`spec.json` is a one-line error naming the file. A shared leaf (it imports `paths`, `files` and
`errors` only), so `reports` and `planning` read runs without importing `training`, which
writes them (`training.runlog.RunLog` extends `RunFiles` with the writes).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tinker_chief.errors import ChiefError, DataError
from tinker_chief.files import JsonObject, read_json
from tinker_chief.paths import RunPaths

# metrics.jsonl keys whose sum is what a run spent (see `RunFiles.usage`).
USAGE_KEYS = ("train/tokens", "prefill/tokens", "sample/tokens", "time/step_s", "time/eval_s")
# run.json's (and each registry version's config's) links to experiment-tracker runs.
TRACKER_LINKS = "trackers"


def json_object_lines(path: Path) -> list[JsonObject]:
    """The JSON objects of a JSONL file written line by line; [] when it does not exist."""
    if not path.exists():
        return []
    rows = []
    for raw in path.read_bytes().splitlines():
        try:
            row = json.loads(raw)
        except (ValueError, RecursionError):  # bad JSON, bad UTF-8, absurd nesting or numbers
            continue  # a torn last line from a crash mid-write: it never counted
        if isinstance(row, dict):
            rows.append(row)
    return rows


def run_dirs(runs: Path) -> list[Path]:
    """The run directories under `runs` (those with a `run.json`), least recently written first."""
    if not runs.is_dir():
        return []
    found = [d for d in runs.iterdir() if RunPaths(d).status.is_file()]
    return sorted(found, key=lambda d: d.stat().st_mtime)


class RunFiles:
    """Reads one run directory; a broken `run.json` or `spec.json` raises `error`."""

    def __init__(self, run_dir: Path, error: type[ChiefError] = DataError) -> None:
        self.dir = run_dir
        self.paths = RunPaths(run_dir)
        self.run_id = run_dir.name
        self.error = error

    def exists(self) -> bool:
        """Whether a run was started here (its `run.json` was written)."""
        return self.paths.status.is_file()

    # `status` and `metrics` stay loosely typed: `chief report`, the planner's calibration and
    # `chief train`'s summary take their values as numbers and strings without narrowing.
    def status(self) -> dict[str, Any]:
        """`run.json` ({} before the run wrote it); not an object is an error naming the file."""
        return self._document(self.paths.status) if self.paths.status.exists() else {}

    def spec(self) -> JsonObject:
        """`spec.json`, the spec the run started with."""
        return self._document(self.paths.spec)

    def metrics(self) -> list[dict[str, Any]]:
        return json_object_lines(self.paths.metrics)

    def checkpoint_rows(self) -> list[JsonObject]:
        return json_object_lines(self.paths.checkpoints)

    def usage(self, up_to_step: int) -> dict[str, float]:
        """What the run spent up to `up_to_step`: tokens trained, prefilled and sampled, machine
        seconds (training steps plus inline evals), summed over metrics.jsonl's rows."""
        totals = dict.fromkeys(USAGE_KEYS, 0.0)
        for row in self.metrics():
            if isinstance(row.get("step"), int) and row["step"] <= up_to_step:
                for key in USAGE_KEYS:
                    value = row.get(key)
                    totals[key] += value if isinstance(value, (int, float)) else 0.0
        return totals

    def _document(self, path: Path) -> JsonObject:
        value = read_json(path, error=self.error)
        if not isinstance(value, dict):
            raise self.error(f"{path}: expected a JSON object, got {type(value).__name__}")
        return value
