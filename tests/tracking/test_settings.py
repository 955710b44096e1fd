"""Choosing a tracker: `--track` and chief.toml's `[tracking]`, a tracker that is not installed
refused in one line before anything trains, the libraries' own environment variables honoured.
These need no tracker installed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.tracking.conftest import tracked_project
from tinker_chief.cli.options import TRACK_CHOICES
from tinker_chief.planning import load_project
from tinker_chief.planning.config import TRACKERS
from tinker_chief.tracking import target
from tinker_chief.tracking.target import resolve_target

from cli_support import chief_in_process


def test_the_flag_offers_what_the_section_takes() -> None:
    assert TRACK_CHOICES == TRACKERS


@pytest.mark.parametrize("command", ["train", "sweep", "select", "demo"])
def test_a_tracker_that_is_not_installed_is_one_line_before_anything_runs(
    command: str, tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.setitem(target.MODULES, "mlflow", "mlflow_is_not_installed_here")
    project = tracked_project(tmp_path / "p")
    if command == "demo":  # the demo creates its project: nothing of it may be written yet
        project = tmp_path / "demo"
    code, _, err = chief_in_process(capsys, command, "-p", str(project), "--track", "mlflow")
    assert code == 1 and "Traceback" not in err, err
    (line,) = err.strip().splitlines()
    assert line.startswith("Error: --track mlflow:"), line
    assert "pip install 'tinker-chief[mlflow]'" in line
    assert (
        not (project / ".chief" / "runs").exists() and not (project / ".chief" / "sweeps").exists()
    )
    assert command != "demo" or not project.exists()


def test_tracking_section_in_chief_toml_is_validated(tmp_path: Path, capsys) -> None:
    project = tracked_project(tmp_path / "p")
    text = (project / "chief.toml").read_text()
    assert "[tracking]\n# none | trackio | wandb | mlflow;" in text  # written, documented
    assert text.count('backend = "none"') == 1
    (project / "chief.toml").write_text(text.replace('backend = "none"', 'backend = "neptune"'))
    code, _, err = chief_in_process(capsys, "train", "-p", str(project))
    (line,) = err.strip().splitlines()
    assert code == 1 and line.startswith("Error: ") and "tracking.backend" in line, err


def test_the_libraries_environment_fills_what_the_section_leaves_unset(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setattr(target, "require_installed", lambda backend: None)
    project = load_project(tracked_project(tmp_path / "p"))
    root, section = project.root, project.config.tracking

    def resolve(flag: str | None) -> target.TrackingTarget:
        chosen = resolve_target(section, flag, project_name="tiny", project_root=root)
        assert chosen is not None
        return chosen

    assert resolve_target(section, None, project_name="tiny", project_root=root) is None
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "team-exp")
    monkeypatch.setenv("WANDB_PROJECT", "team-proj")
    monkeypatch.setenv("WANDB_ENTITY", "team")
    mlflow = resolve("mlflow")
    assert (mlflow.mlflow_uri, mlflow.experiment) == ("http://127.0.0.1:5000", "team-exp")
    assert (resolve("wandb").project, resolve("wandb").entity) == ("team-proj", "team")
    assert resolve("trackio").project == "tiny"  # $WANDB_PROJECT is W&B's only
    # The section, when it says, wins over the environment; the flag over the section's backend.
    section.experiment, section.backend = "from-toml", "trackio"
    chosen = resolve("mlflow")
    assert (chosen.backend, chosen.experiment) == ("mlflow", "from-toml")
    assert resolve(None).backend == "trackio"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    local = (root / ".chief" / "tracking" / "mlflow.db").resolve().as_posix()
    assert resolve("mlflow").mlflow_uri == f"sqlite:///{local}"


def test_no_tracker_library_is_imported_unless_one_is_asked_for(tmp_path: Path) -> None:
    """Every command's module, the workflows, the report and the card load without MLflow, W&B,
    Trackio or the cookbook's logger module (which imports W&B and Trackio): a plain install
    runs them all, and untracked commands pay no import time for trackers."""
    modules = [
        "tinker_chief.cli.train",
        "tinker_chief.cli.sweep",
        "tinker_chief.cli.eval",
        "tinker_chief.cli.registry",
        "tinker_chief.cli.demo",
        "tinker_chief.workflows.demo",
        "tinker_chief.workflows.sweeping",
        "tinker_chief.workflows.selection",
        "tinker_chief.workflows.evaluation",
        "tinker_chief.tracking.mirror",
        "tinker_chief.reports.html",
        "tinker_chief.publish.card",
    ]
    trackers = ["mlflow", "wandb", "trackio", "tinker_cookbook.utils.ml_log"]
    code = (
        f"import importlib, sys\nfor m in {modules!r}: importlib.import_module(m)\n"
        f"print(sorted(m for m in {trackers!r} if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
