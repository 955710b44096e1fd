"""One reader of a run's files (`tinker_chief.runfiles`): training (resume, usage), the report and
the planner's calibration read `metrics.jsonl` and `run.json` alike, so a line one of them skips
is skipped by all and none of them fails on it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tinker_chief.errors import DataError, TrainingError
from tinker_chief.paths import ProjectPaths
from tinker_chief.reports import collect
from tinker_chief.runfiles import RunFiles, run_dirs
from tinker_chief.training import RunLog

ROWS = [
    {"step": 1, "train/loss": 2.0, "train/tokens": 100, "time/step_s": 0.5},
    {"step": 2, "train/loss": 1.0, "train/tokens": 120, "time/step_s": 0.5},
    {"step": 2, "val/nll": 1.5, "prefill/tokens": 40, "time/eval_s": 0.25},
]


def _run(project: Path) -> Path:
    (project / "chief.toml").write_text('name = "p"\n')
    run_dir = ProjectPaths(project).run("run-1").dir
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps({"status": "finished"}))
    lines = [json.dumps(ROWS[0]), "[1, 2]", '"a string"', json.dumps(ROWS[1]), json.dumps(ROWS[2])]
    torn = json.dumps({"step": 3, "train/loss": 0.5})[:12]  # a crash mid-write
    (run_dir / "metrics.jsonl").write_text("\n".join([*lines, torn]))
    return run_dir


def test_lines_that_are_not_objects_are_skipped_by_training_and_the_report(tmp_path: Path) -> None:
    run_dir = _run(tmp_path)
    assert RunFiles(run_dir).metrics() == RunLog(run_dir).metrics() == ROWS
    spent = RunLog(run_dir).usage(2)  # what the registry sink records for a checkpoint at step 2
    assert (spent["train/tokens"], spent["prefill/tokens"], spent["time/step_s"]) == (220, 40, 1.0)
    (curves,) = collect(tmp_path).runs
    assert (curves.status, curves.train, curves.val) == (
        "finished",
        [(1, 2.0), (2, 1.0)],
        {"val/nll": [(2, 1.5)]},
    )


def test_a_broken_run_json_names_the_file_with_the_readers_error(tmp_path: Path) -> None:
    run_dir = _run(tmp_path)
    (run_dir / "run.json").write_text("[]")
    with pytest.raises(TrainingError, match=r"run\.json: expected a JSON object, got list"):
        RunLog(run_dir).status()
    with pytest.raises(DataError, match=r"run\.json: expected a JSON object"):
        collect(tmp_path)
    assert run_dirs(ProjectPaths(tmp_path).runs) == [run_dir]


CHECKPOINT = {
    "name": "step-000002",
    "step": 2,
    "state_path": "tinker://run-1/weights/step-000002",
    "sampler_path": "tinker://run-1/sampler_weights/step-000002",
    "training_run_id": "run-1",
    "final": True,
    "registry_ref": None,
}


def _checkpoints(run_dir: Path, *rows: dict[str, object]) -> Path:
    path = run_dir / "checkpoints.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_a_hand_edited_checkpoint_row_is_one_error_naming_the_file_and_field(
    tmp_path: Path,
) -> None:
    run_dir = _run(tmp_path)
    path = _checkpoints(run_dir, CHECKPOINT, {**CHECKPOINT, "step": "3"})
    with pytest.raises(
        TrainingError,
        match=rf'^{path}: a checkpoint\'s field "step": expected an integer, got str$',
    ):
        RunLog(run_dir).last_checkpoint()
    _checkpoints(run_dir, {k: v for k, v in CHECKPOINT.items() if k != "state_path"})
    with pytest.raises(TrainingError, match=r'field "state_path": expected a string, got nothing'):
        RunLog(run_dir).checkpoints()


def test_checkpoint_rows_read_back_as_written_and_unknown_fields_are_ignored(
    tmp_path: Path,
) -> None:
    run_dir = _run(tmp_path)
    oldest = {
        k: v for k, v in CHECKPOINT.items() if k not in ("training_run_id", "final", "registry_ref")
    }
    _checkpoints(run_dir, oldest, {**CHECKPOINT, "written_by": "a later chief"})
    first, last = RunLog(run_dir).checkpoints()
    assert (first.step, first.training_run_id, first.final, first.registry_ref) == (
        2,
        None,
        False,
        None,
    )
    assert (last.name, last.state_path, last.final) == (
        CHECKPOINT["name"],
        CHECKPOINT["state_path"],
        True,
    )
