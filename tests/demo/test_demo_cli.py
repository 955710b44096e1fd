"""`chief demo` end to end on tiny-random-llama: real engine, real training, real evals and gate.

Runs the command through click's CliRunner with 2 training steps (about 40 s on 2 cores) and
checks what the README promises: both models in the registry's SQLite file with a finished
eval of every suite task, MODEL_REGISTRY.md and report.html written, the gate's verdict shown,
and the promoted checkpoint exported (when the gate let it through).
The suite includes the published HumanEval on 5 problems, staged into a private datasets cache
and recorded with its task version and dataset revision (skipped, with a note, without bwrap).
It runs with `--track mlflow` (one demo run for both: it is the suite's longest test), read back
through `MlflowClient`: the training run, both suites' results and the gate's verdicts.
"""

from __future__ import annotations

import shutil
import sqlite3

import pytest
from click.testing import CliRunner

from tinker_chief.cli.main import cli
from tinker_chief.evals.hub_data import task_data
from tinker_chief.planning import load_project
from tinker_chief.registry import Registry
from tinker_chief.workflows.demo.scaffold import HUMANEVAL_LIMIT


@pytest.fixture
def datasets_cache(tmp_path, monkeypatch):
    """The demo stages HumanEval into the datasets cache the environment names: a private one
    here."""
    import datasets.config

    cache = tmp_path / "hf-datasets"
    monkeypatch.setenv("HF_DATASETS_CACHE", str(cache))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)  # read once, at import
    return cache


def test_demo_on_the_tiny_model(tmp_path, datasets_cache):
    directory = tmp_path / "demo"
    tiny = ("--base-model", "tiny-random-llama", "--steps", "2")
    result = CliRunner().invoke(cli, ["demo", *tiny, "-p", str(directory), "--track", "mlflow"])
    assert result.exit_code == 0, result.output
    assert "gate verdict: base/tiny-random-llama:v1 passed -> prod" in result.output
    assert "in prod now:" in result.output
    # Where the time went, as `chief train` and `chief eval` print it: both evals and the run.
    speeds = [line for line in result.output.splitlines() if line.startswith("speed: ")]
    assert len(speeds) == 3 and all("tok/s" in line and "; precision: " in line for line in speeds)
    assert "train tokens" in speeds[1] and "prompt + sampled tokens" in speeds[2]

    project = load_project(directory)
    suite = project.config.eval_suite
    has_bwrap = shutil.which("bwrap") is not None
    assert {t.name for t in suite.tasks} == {"val_nll", "secret_code", "safety", "calibration"} | (
        {"humaneval"} if has_bwrap else set()
    )
    with sqlite3.connect(project.registry_path) as db:
        models = dict(db.execute("SELECT id, recipe FROM models").fetchall())
        finished = db.execute(
            "SELECT model_id, task FROM eval_runs WHERE status = 'finished' AND suite_version = ?",
            (suite.version,),
        ).fetchall()
        outcomes = db.execute("SELECT COUNT(*) FROM samples").fetchone()[0]
    assert sorted(models.values()) == ["base", "sl"]
    for model_id in models:
        assert {task for mid, task in finished if mid == model_id} == {t.name for t in suite.tasks}
    assert outcomes > 0
    assert "base/tiny-random-llama:v1" in (directory / "MODEL_REGISTRY.md").read_text()
    assert (directory / "report.html").stat().st_size > 0
    with sqlite3.connect(project.registry_path) as db:
        (prod,) = db.execute("SELECT recipe FROM models WHERE status = 'prod'").fetchone()
    if prod == "sl":  # the checkpoint won: the demo ends with its verified export
        assert (directory / "export" / "adapter_model.safetensors").is_file()
        assert "round trip with plain transformers + PEFT" in result.output
    else:
        assert "the checkpoint is not in prod, so there is nothing to export" in result.output
    if has_bwrap:
        _assert_humaneval_slice_recorded(
            project, datasets_cache, (directory / "report.html").read_text()
        )
    else:
        assert "skipped `inspect_evals/humaneval`" in result.output
    _assert_tracked_in_mlflow(project, result.output)


def _assert_tracked_in_mlflow(project, output):
    """The run's loss curve and both suites' results in MLflow; the base model, which no chief run
    made, in one run of its own with its evals and its gate verdict."""
    from mlflow.tracking import MlflowClient

    store = f"sqlite:///{project.root.resolve()}/.chief/tracking/mlflow.db"
    client = MlflowClient(tracking_uri=store)
    experiment = client.get_experiment_by_name(project.config.name)
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    with Registry.open(project.registry_path) as registry:
        base = registry.get_model("base/tiny-random-llama")
        checkpoint = registry.get_model(project.config.name)
        base_results = registry.latest_results(base.ref)
    (trained,) = [r for name, r in runs.items() if name.startswith("run-")]
    history = client.get_metric_history(trained.info.run_id, "train/loss")
    assert sorted(m.step for m in history) == [1, 2]
    assert checkpoint.config["trackers"]["mlflow"]["run_id"] == trained.info.run_id
    assert any(key.startswith("eval/") for key in client.get_run(trained.info.run_id).data.metrics)
    tags = client.get_run(trained.info.run_id).data.tags
    if f"gate verdict: {checkpoint.ref}" in output:  # put to the gate only when it was better
        assert tags["chief.gate"] in ("passed for prod", "refused for prod")
    else:
        assert "chief.gate" not in tags
    own = client.get_run(runs[base.ref].info.run_id).data
    for task, run in base_results.items():
        for name, metric in run.metrics.items():
            assert own.metrics[f"eval/{task}/{name}"] == pytest.approx(metric.value)
    assert own.tags["chief.gate"] == "passed for prod"  # the status quo goes to prod first
    assert own.tags["chief.status"] == base.status  # prod, or staging once the checkpoint won
    assert len(runs) == 2  # the training run, and the base model's one run


def _assert_humaneval_slice_recorded(project, cache, report):
    (load,) = task_data("humaneval").loads  # the revision the installed inspect_evals pins
    assert any(
        (cache / "openai___openai_humaneval").rglob("chief-staged.json")
    )  # staged here, not elsewhere
    with Registry.open(project.registry_path) as registry:
        for model in registry.list_models():
            run = registry.latest_results(model.ref, project.config.eval_suite.version)["humaneval"]
            assert run.metrics["accuracy"].n == HUMANEVAL_LIMIT
            assert (
                run.settings["inspect_task"] == "inspect_evals/humaneval"
                and run.settings["task_version"]
            )
            (split,) = run.settings["dataset"]
            assert (split["revision"], split["origin"], split["rows"]) == (
                load.revision,
                "staged",
                164,
            )
    assert load.revision in report
