"""`chief demo` end to end on tiny-random-llama: real engine, real training, real evals and gate.

Runs the command through click's CliRunner with 2 training steps (about 40 s on 2 cores) and
checks what the README promises: both models in the registry's SQLite file with a finished
eval of every suite task, MODEL_REGISTRY.md and report.html written, the gate's verdict shown.
"""

from __future__ import annotations

import sqlite3

from click.testing import CliRunner

from tinker_chief.cli.main import cli
from tinker_chief.planning import load_project


def test_demo_on_the_tiny_model(tmp_path):
    directory = tmp_path / "demo"
    result = CliRunner().invoke(cli, ["demo", "--base-model", "tiny-random-llama", "--steps", "2",
                                      "--dir", str(directory)])
    assert result.exit_code == 0, result.output
    assert "gate verdict: base/tiny-random-llama:v1 passed -> prod" in result.output
    assert "in prod now:" in result.output

    project = load_project(directory)
    suite = project.config.eval_suite
    assert {t.name for t in suite.tasks} == {"val_nll", "secret_code", "safety", "calibration"}
    with sqlite3.connect(project.registry_path) as db:
        models = dict(db.execute("SELECT id, recipe FROM models").fetchall())
        finished = db.execute("SELECT model_id, task FROM eval_runs WHERE status = 'finished' AND suite_version = ?",
                              (suite.version,)).fetchall()
        outcomes = db.execute("SELECT COUNT(*) FROM samples").fetchone()[0]
    assert sorted(models.values()) == ["base", "sl"]
    for model_id in models:
        assert {task for mid, task in finished if mid == model_id} == {t.name for t in suite.tasks}
    assert outcomes > 0
    assert "base/tiny-random-llama:v1" in (directory / "MODEL_REGISTRY.md").read_text()
    assert (directory / "report.html").stat().st_size > 0
