"""Weights & Biases, for real, offline (`WANDB_MODE=offline`, no account, no network):
`chief sweep/eval --track wandb` on the tiny model writes W&B's own run files under
.chief/tracking/wandb, read back record by record (tests/tracking/wandb_support.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.tracking.conftest import Swept, chief, logged
from tests.tracking.wandb_support import offline_runs
from tinker_chief.registry import Registry

TRACKER = "wandb"


@pytest.fixture(scope="module", autouse=True)
def offline() -> Iterator[None]:
    """Offline, silent W&B for the module's sweep and evals (set before `swept` runs)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WANDB_MODE", "offline")
        patch.setenv("WANDB_SILENT", "true")
        yield


def test_sweep_is_one_wandb_group_with_a_run_per_point(swept: Swept) -> None:
    points = swept.sweep["points"]
    runs = offline_runs(swept.project / ".chief" / "tracking" / "wandb")
    assert sorted(r.name for r in runs) == sorted(f"{p['name']} {p['run_id']}" for p in points)
    for run in runs:
        point = next(p for p in points if run.name == f"{p['name']} {p['run_id']}")
        assert run.group == swept.sweep["sweep_id"] and run.project == "tiny"
        assert run.exit_code == 0
        assert float(run.config["optimizer.learning_rate"]) == pytest.approx(point["learning_rate"])
        assert "get_lr" in run.config["rule.learning_rate.recommended"]
        run_dir = swept.run_dir(point["run_id"])
        for key in ("train/loss", "val/nll"):
            curve = sorted((row["_step"], row[key]) for row in run.history if key in row)
            assert curve == [(s, pytest.approx(v)) for s, v in logged(run_dir, key)] != []
        assert run.summary["chief.candidate"] == point["candidate"]

    with Registry.open(swept.project / ".chief" / "registry.db") as registry:
        versions = registry.list_models()
    assert {v.config["trackers"]["wandb"]["run_id"] for v in versions} == {r.run_id for r in runs}


def test_eval_joins_the_versions_wandb_run(swept: Swept, engine) -> None:
    wandb_dir = swept.project / ".chief" / "tracking" / "wandb"
    before = {run.directory for run in offline_runs(wandb_dir)}
    with Registry.open(swept.project / ".chief" / "registry.db") as registry:
        version = registry.list_models()[0]
    args = ("-p", str(swept.project), "--base-url", engine.base_url, "--track", "wandb")
    chief("eval", version.ref, *args)
    with Registry.open(swept.project / ".chief" / "registry.db") as registry:
        recorded = registry.latest_results(version.ref)["heldout_nll"]
    nll = recorded.metrics["nll"]
    run_id = version.config["trackers"]["wandb"]["run_id"]
    # Offline, the resumed run is a second run directory with the same id (`wandb sync` joins them).
    (joined,) = [r for r in offline_runs(wandb_dir) if r.directory not in before]
    assert joined.run_id == run_id
    (row,) = [row for row in joined.history if "eval/heldout_nll/nll" in row]
    assert row["eval/heldout_nll/nll"] == pytest.approx(nll.value)
    assert row["eval/heldout_nll/nll/n"] == nll.n
    assert row["_step"] == version.training_step and joined.summary["eval.suite"] == "tiny-suite"
    # The table: W&B's table file beside the run, named in the history row.
    assert row["eval/tiny-suite/_type"] == "table-file"
    assert row["eval/tiny-suite/nrows"] == len(recorded.metrics)
    table = json.loads((joined.directory / "files" / row["eval/tiny-suite/path"]).read_text())
    rows = {r[3]: dict(zip(table["columns"], r)) for r in table["data"]}
    assert rows["nll"]["n"] == nll.n and rows["nll"]["suite_version"] == recorded.suite_version
