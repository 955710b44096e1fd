"""Fixtures for tracking tests: tiny projects (tests/training/conftest.py) trained on the
session's engine with `--track`, each tracker writing to a store of its own (the project's
.chief/tracking, or the test run's private Trackio store from tests/conftest.py). Every assertion
reads back through the tracker library's own reading API.

A tracker's module sweeps one project once (`swept`, module-scoped: planning and a two-point
sweep of three steps each), and its tests read that sweep and add to it (eval, select, promote).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from tests.training.conftest import make_project
from tinker_chief.cli.main import cli

from jsonl_support import read_jsonl

SHORT = {
    "schedule": {"batch_size": 4, "epochs": 1, "steps": 3},
    "checkpoints": {"every_steps": 0},
    "inline_evals": {"nll_every_steps": 3},
}
# A suite the tiny model runs in seconds: the held-out NLL (no sampling).
SUITE = {
    "tasks": [
        {
            "name": "heldout_nll",
            "layer": "training",
            "kind": "nll",
            "data": "data/heldout.jsonl",
            "headline_metric": "nll",
        }
    ]
}


def tracked_project(root: Path, **sections: object) -> Path:
    return make_project(root, **{**SHORT, "eval_suite": SUITE, **sections})


def chief(*args: str) -> Result:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def logged(run_dir: Path, key: str) -> list[tuple[int, float]]:
    """`key` of a run's metrics.jsonl, step by step: what the tracker's curve must match."""
    rows = read_jsonl(run_dir / "metrics.jsonl")
    return sorted((row["step"], row[key]) for row in rows if key in row)


@dataclass(frozen=True)
class Swept:
    """A project planned and swept (two learning rates) with `--track`."""

    project: Path
    sweep: dict[str, Any]  # sweep.json
    output: str  # what `chief sweep` printed

    def run_dir(self, run_id: str) -> Path:
        return self.project / ".chief" / "runs" / run_id

    def point_of(self, run_id: str) -> dict[str, Any]:
        return next(p for p in self.sweep["points"] if p["run_id"] == run_id)


@pytest.fixture(scope="module")
def swept(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, engine
) -> Iterator[Swept]:
    """The module's `TRACKER` (and its `TRACKING` section, if any) on a planned project, swept."""
    backend: str = request.module.TRACKER
    project = tracked_project(
        tmp_path_factory.mktemp(backend) / "p", **getattr(request.module, "TRACKING", {})
    )
    chief("plan", "-p", str(project))
    args = ("--lr-multipliers", "0.5,2", "--base-url", engine.base_url, "--track", backend)
    result = chief("sweep", "-p", str(project), *args)
    (sweep_dir,) = (project / ".chief" / "sweeps").iterdir()
    yield Swept(project, json.loads((sweep_dir / "sweep.json").read_text()), result.output)
