"""Trackio, for real: its local store (the test run's private `$TRACKIO_DIR`, tests/conftest.py),
written by `chief sweep/eval --track trackio` on the tiny model and read back through Trackio's
own reader (`trackio.Api().runs`, `SQLiteStorage.get_metric_values` / `get_run_config` /
`get_logs`, what its dashboard reads)."""

from __future__ import annotations

import uuid

import pytest
import trackio
from trackio.sqlite_storage import SQLiteStorage

from tests.tracking.conftest import Swept, chief, logged
from tinker_chief.registry import Registry

TRACKER = "trackio"
PROJECT = f"tiny-{uuid.uuid4().hex[:8]}"  # the Trackio project, private to this module
TRACKING = {"tracking": {"project": PROJECT}}


def _curve(run: str, key: str) -> list[tuple[int, float]]:
    values = SQLiteStorage.get_metric_values(PROJECT, run, key)
    return sorted((v["step"], v["value"]) for v in values)


def test_sweep_is_one_trackio_group_with_a_run_per_point(swept: Swept) -> None:
    points = swept.sweep["points"]
    runs = {run.name: run for run in trackio.Api().runs(PROJECT)}
    assert sorted(runs) == sorted(f"{p['name']} {p['run_id']}" for p in points)
    for point in points:
        name = f"{point['name']} {point['run_id']}"
        config = SQLiteStorage.get_run_config(PROJECT, name)
        assert config["_Group"] == swept.sweep["sweep_id"]
        assert float(config["optimizer.learning_rate"]) == pytest.approx(point["learning_rate"])
        assert "get_lr" in config["rule.learning_rate.recommended"]
        run_dir = swept.run_dir(point["run_id"])
        assert _curve(name, "train/loss") == logged(run_dir, "train/loss")
        assert [step for step, _ in logged(run_dir, "train/loss")] == [1, 2, 3]
        assert _curve(name, "val/nll") == logged(run_dir, "val/nll") != []
    said = " ".join(swept.output.split())
    assert f"tracker: trackio group {swept.sweep['sweep_id']}: project {PROJECT}" in said

    with Registry.open(swept.project / ".chief" / "registry.db") as registry:
        versions = registry.list_models()
    assert {v.config["trackers"]["trackio"]["run_id"] for v in versions} == {
        r.id for r in runs.values()
    }


def test_eval_joins_the_versions_trackio_run(swept: Swept, engine) -> None:
    with Registry.open(swept.project / ".chief" / "registry.db") as registry:
        version = registry.list_models()[0]
    args = ("-p", str(swept.project), "--base-url", engine.base_url, "--track", "trackio")
    chief("eval", version.ref, *args)
    name = version.config["trackers"]["trackio"]["name"]
    with Registry.open(swept.project / ".chief" / "registry.db") as registry:
        nll = registry.latest_results(version.ref)["heldout_nll"].metrics["nll"]
    step = version.training_step
    assert _curve(name, "eval/heldout_nll/nll") == [(step, pytest.approx(nll.value))]
    assert _curve(name, "eval/heldout_nll/nll/n") == [(step, nll.n)]
    # The eval table as Trackio stores it, and the run's config and group kept through the attach.
    logs = SQLiteStorage.get_logs(PROJECT, name)
    tables = [log["eval/tiny-suite"] for log in logs if "eval/tiny-suite" in log]
    rows = {row["metric"]: row for row in tables[-1]["_value"]}
    assert rows["nll"]["n"] == nll.n and rows["nll"]["value"] == pytest.approx(nll.value)
    config = SQLiteStorage.get_run_config(PROJECT, name)
    assert config["_Group"] == version.config["sweep"]["id"] and config["lora.rank"] == "4"
