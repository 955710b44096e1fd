"""MLflow, for real: a SQLite store under the project, written by `chief sweep/train/eval/select/
promote --track mlflow` on the tiny model, read back through `MlflowClient` (`search_runs`,
`get_metric_history`, `load_table`)."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from tests.tracking.conftest import Swept, chief, logged, tracked_project
from tinker_chief.registry import ModelRecord, Registry

from jsonl_support import read_jsonl

TRACKER = "mlflow"


def _uri(project: Path) -> str:
    return f"sqlite:///{project.resolve()}/.chief/tracking/mlflow.db"


def _client(project: Path) -> MlflowClient:
    return MlflowClient(tracking_uri=_uri(project))


def _experiment(client: MlflowClient, name: str = "tiny") -> str:
    experiment = client.get_experiment_by_name(name)
    assert experiment is not None
    return experiment.experiment_id


def _curve(client: MlflowClient, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def _table(project: Path, artifact: str, run_id: str, monkeypatch: pytest.MonkeyPatch) -> object:
    """A table artifact read back by MLflow. `MlflowClient.load_table` finds the run through the
    fluent `mlflow.search_runs`, i.e. the process's tracking URI: set to the store first."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", _uri(project))
    client = _client(project)
    return client.load_table(_experiment(client), artifact, run_ids=[run_id])


def _sweep_runs(client: MlflowClient) -> tuple[Run, list[Run]]:
    """The sweep's parent run and its children."""
    experiment = _experiment(client)
    (parent,) = client.search_runs([experiment], filter_string="tags.`chief.kind` = 'sweep'")
    parent_id = parent.info.run_id
    children = client.search_runs(
        [experiment], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'"
    )
    return parent, children


def _versions(project: Path) -> list[ModelRecord]:
    with Registry.open(project / ".chief" / "registry.db") as registry:
        return registry.list_models()


def test_sweep_is_a_parent_run_with_a_child_per_point(swept: Swept, monkeypatch) -> None:
    client = _client(swept.project)
    experiment = _experiment(client)
    # Tagged as model training, MLflow 3's UI opens the experiment on its runs, not its GenAI view.
    assert (
        client.get_experiment(experiment).tags["mlflow.experimentKind"]
        == "custom_model_development"
    )
    parent, children = _sweep_runs(client)
    assert parent.info.run_name == swept.sweep["sweep_id"] and parent.info.status == "FINISHED"
    said = " ".join(swept.output.split())  # rich wraps at the runner's 80 columns
    assert f"tracker: mlflow run {swept.sweep['sweep_id']} ({parent.info.run_id})" in said
    points = swept.sweep["points"]
    assert sorted(c.data.params["chief.run_id"] for c in children) == sorted(
        p["run_id"] for p in points
    )
    trained = [
        r for r in client.search_runs([experiment]) if not r.info.run_name.startswith("base/")
    ]
    assert len(trained) == 1 + len(points) == 3  # (a base model's evals get a run of their own)

    for child in children:
        run_dir = swept.run_dir(child.data.params["chief.run_id"])
        # The loss curve and the inline val NLL, step for step as chief logged them.
        assert _curve(client, child.info.run_id, "train/loss") == logged(run_dir, "train/loss")
        assert [step for step, _ in logged(run_dir, "train/loss")] == [1, 2, 3]
        assert _curve(client, child.info.run_id, "val/nll") == logged(run_dir, "val/nll") != []
        # The plan: hyperparameters the point used, and each recommendation with its rule.
        point, params = swept.point_of(run_dir.name), child.data.params
        assert float(params["optimizer.learning_rate"]) == pytest.approx(point["learning_rate"])
        assert params["lora.rank"] == "4" and params["base_model"] == "tiny-random-llama"
        assert "get_lr" in params["rule.learning_rate.recommended"]
        assert params["version.tinker"] and params["config_hash"]
        assert "rl.group_size" not in params  # an SFT run has no RL hyperparameters
        assert child.data.tags["chief.candidate"] == point["candidate"]
        assert child.info.status == "FINISHED"
    table = _table(swept.project, "sweep/points.json", parent.info.run_id, monkeypatch)
    assert sorted(table["point"]) == sorted(p["name"] for p in points)
    assert sorted(table["final_val_nll"]) == pytest.approx(
        sorted(p["final_val_nll"] for p in points)
    )

    # The registry links each version to its tracker run; `registry show` prints the link.
    by_run = {c.data.params["chief.run_id"]: c.info.run_id for c in children}
    versions = _versions(swept.project)
    assert {v.config["trackers"]["mlflow"]["run_id"] for v in versions} == set(by_run.values())
    version = versions[0]
    shown = " ".join(
        chief("registry", "show", version.ref, "-p", str(swept.project)).output.split()
    )
    name = f"{swept.point_of(version.training_run_id)['name']} {version.training_run_id}"
    assert f"tracker: mlflow run {name} ({by_run[version.training_run_id]}): experiment" in shown


def test_eval_adds_the_suites_metrics_to_the_versions_run(
    swept: Swept, engine, monkeypatch
) -> None:
    client = _client(swept.project)
    version = _versions(swept.project)[0]
    run_id = version.config["trackers"]["mlflow"]["run_id"]
    args = ("-p", str(swept.project), "--base-url", engine.base_url, "--track", "mlflow", "--json")
    evaluated = chief("eval", version.ref, *args)
    assert f'"run_id": "{run_id}"' in evaluated.output  # --json names the run the results joined
    with Registry.open(swept.project / ".chief" / "registry.db") as registry:
        recorded = registry.latest_results(version.ref)["heldout_nll"]
    nll = recorded.metrics["nll"]
    # At the version's training step, with its n and interval.
    assert _curve(client, run_id, "eval/heldout_nll/nll")[-1] == (
        version.training_step,
        pytest.approx(nll.value),
    )
    assert _curve(client, run_id, "eval/heldout_nll/nll/n")[-1] == (version.training_step, nll.n)
    assert _curve(client, run_id, "eval/heldout_nll/nll/ci_high")[-1][1] == pytest.approx(
        nll.ci_high
    )
    tags = client.get_run(run_id).data.tags
    assert (
        tags["eval.suite_version"] == recorded.suite_version and tags["eval.suite"] == "tiny-suite"
    )
    table = _table(swept.project, "eval/tiny-suite.json", run_id, monkeypatch)
    rows = {row["metric"]: row for row in table.to_dict("records")}
    assert set(rows) == set(recorded.metrics)
    assert rows["nll"] == {
        "suite": "tiny-suite",
        "suite_version": recorded.suite_version,
        "task": "heldout_nll",
        "metric": "nll",
        "value": pytest.approx(nll.value),
        "ci_low": pytest.approx(nll.ci_low),
        "ci_high": pytest.approx(nll.ci_high),
        "n": nll.n,
    }
    assert client.get_run(run_id).info.status == "FINISHED"  # results joined; the run's end stays


def test_a_base_model_gets_one_run_of_its_own(swept: Swept, engine) -> None:
    """No chief run made the base model: its evals, each time, go to one run named after it."""
    args = ("-p", str(swept.project), "--base-url", engine.base_url, "--track", "mlflow")
    chief("eval", "tiny-random-llama", *args)
    chief("eval", "tiny-random-llama", *args)
    client = _client(swept.project)
    with Registry.open(swept.project / ".chief" / "registry.db") as registry:
        (base,) = [v for v in registry.list_models() if v.recipe == "base"]
        nll = registry.latest_results(base.ref)["heldout_nll"].metrics["nll"]
    name = f"attributes.run_name = '{base.ref}'"
    (own,) = client.search_runs([_experiment(client)], filter_string=name)
    assert (
        own.data.params["model"] == base.ref
        and own.data.params["base_model"] == "tiny-random-llama"
    )
    assert [value for _, value in _curve(client, own.info.run_id, "eval/heldout_nll/nll")] == [
        pytest.approx(nll.value)
    ] * 2


def test_select_and_promote_tag_the_chosen_versions_run(swept: Swept, engine, monkeypatch) -> None:
    client = _client(swept.project)
    project, backend = str(swept.project), ("--base-url", engine.base_url)
    printed = json.loads(
        chief("select", "-p", project, *backend, "--track", "mlflow", "--json").stdout
    )
    with Registry.open(swept.project / ".chief" / "registry.db") as registry:
        (selection,) = registry.selections(f"sweep:{swept.sweep['sweep_id']}")
        chosen = registry.get_model(selection.model_ref)
        suite_version = registry.latest_results(chosen.ref)["heldout_nll"].suite_version
    chosen_run = chosen.config["trackers"]["mlflow"]["run_id"]
    assert printed["chosen"] == chosen.ref and printed["tracker"]["run_id"] == chosen_run
    tags = client.get_run(chosen_run).data.tags
    assert (tags["chief.selected"], tags["chief.selected.reason"]) == (
        selection.scope,
        selection.reason,
    )
    assert tags["eval.suite_version"] == suite_version  # the shortlist's suite results joined too
    chief("promote", chosen.ref, "--to", "prod", "-p", project, "--track", "mlflow", *backend)
    tags = client.get_run(chosen_run).data.tags
    assert (tags["chief.status"], tags["chief.gate"]) == ("prod", "passed for prod")
    verdict = _table(swept.project, "gate/verdict.json", chosen_run, monkeypatch)
    assert verdict.to_dict("records")[0]["status"] == "prod"
    chief(
        "retire", chosen.ref, "--reason", "superseded", "-p", project, "--track", "mlflow", *backend
    )
    tags = client.get_run(chosen_run).data.tags
    assert (tags["chief.status"], tags["chief.gate"]) == ("retired", "retired")


def _beside(swept: Swept, experiment: str) -> dict[str, str]:
    """A `[tracking]` section logging into the swept project's store, in an experiment of its
    own (a fresh SQLite store costs MLflow seconds of schema migrations)."""
    return {"backend": "mlflow", "uri": _uri(swept.project), "experiment": experiment}


class _Hook:
    """A training observer that calls `act` after step `at` (what happens mid-run)."""

    def __init__(self, at: int, act: Callable[[], None]) -> None:
        self.at, self.act = at, act

    def on_start(self, run_id: str, start_step: int, total_steps: int) -> None: ...
    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        if step == self.at:
            self.act()

    def on_eval(self, step: int, metrics: dict[str, float]) -> None: ...
    def on_checkpoint(self, record: object) -> None: ...
    def on_end(self, result: object) -> None: ...


def test_resume_continues_the_same_mlflow_run(swept: Swept, tmp_path: Path, engine) -> None:
    """A Ctrl-C (a real SIGINT, to this process) after step 1 of 6 ends the MLflow run as killed;
    `chief train --resume` (the section names the tracker) continues that same run."""
    from tinker_chief.planning import load_project
    from tinker_chief.tracking.mirror import tracking_for
    from tinker_chief.tracking.observer import fan_out
    from tinker_chief.training import train_project

    schedule = {"batch_size": 4, "epochs": 1, "steps": None}
    tracking = _beside(swept, "resume")
    root = tracked_project(tmp_path / "p", schedule=schedule, tracking=tracking)
    project = load_project(root)
    mirror = tracking_for(project, None, print).run_observer(root)
    ctrl_c = _Hook(1, lambda: signal.raise_signal(signal.SIGINT))
    stopped = train_project(project, base_url=engine.base_url, observer=fan_out(mirror, ctrl_c))
    assert (stopped.status, stopped.steps_done, stopped.total_steps) == ("interrupted", 1, 6)

    client = _client(swept.project)
    (interrupted,) = client.search_runs([_experiment(client, "resume")])
    assert (
        interrupted.info.status == "KILLED"
        and interrupted.data.tags["chief.status"] == "interrupted"
    )

    chief("train", "-p", str(root), "--base-url", engine.base_url, "--resume")
    (resumed,) = client.search_runs([_experiment(client, "resume")])
    assert resumed.info.run_id == interrupted.info.run_id and resumed.info.status == "FINISHED"
    steps = {step for step, _ in _curve(client, resumed.info.run_id, "train/loss")}
    assert steps == {step for step, _ in logged(stopped.run_dir, "train/loss")} == set(range(1, 7))
    links = {v.config["trackers"]["mlflow"]["run_id"] for v in _versions(root)}
    assert links == {resumed.info.run_id}


def test_a_tracker_failing_mid_run_leaves_a_finished_run_and_a_complete_registry(
    swept: Swept, tmp_path: Path, engine
) -> None:
    """The MLflow run is deleted under the running trainer (MLflow then refuses every write to
    it): one warning, and the chief run, its metrics and its registry versions are complete."""
    from tinker_chief.planning import load_project
    from tinker_chief.tracking.mirror import tracking_for
    from tinker_chief.tracking.observer import fan_out
    from tinker_chief.training import train_project

    tracking = _beside(swept, "failing")
    project = load_project(
        tracked_project(tmp_path / "p", checkpoints={"every_steps": 1}, tracking=tracking)
    )
    warnings: list[str] = []
    mirror = tracking_for(project, None, warnings.append).run_observer(project.root)
    assert mirror is not None
    client = _client(swept.project)
    saboteur = _Hook(2, lambda: client.delete_run(mirror.link.run_id))

    result = train_project(project, base_url=engine.base_url, observer=fan_out(mirror, saboteur))
    assert result.status == "finished" and result.steps_done == 3
    assert len(warnings) == 1 and "mlflow tracking stopped" in warnings[0], warnings
    checkpoints = read_jsonl(result.run_dir / "checkpoints.jsonl")
    versions = _versions(project.root)
    assert [v.training_step for v in versions] == [c["step"] for c in checkpoints] == [1, 2, 3]
    assert [s for s, _ in logged(result.run_dir, "train/loss")] == [1, 2, 3]
    # What reached MLflow before the failure is there: steps 1 and 2 (the saboteur hears step 2
    # after the tracker logged it); the deleted run is still read back by its id.
    assert [s for s, _ in _curve(client, mirror.link.run_id, "train/loss")] == [1, 2]


def test_names_mlflow_refuses_are_logged_under_names_it_takes(swept: Swept) -> None:
    """A data file or suite task named by the user may hold characters MLflow refuses in a key;
    the value is logged under the nearest key it takes instead of switching tracking off."""
    from tinker_chief.planning import load_project
    from tinker_chief.tracking.mirror import tracking_for

    project = load_project(swept.project)
    project.config.tracking.experiment = "odd-names"
    warnings: list[str] = []
    tracker = tracking_for(project, "mlflow", warnings.append).tracker
    assert tracker is not None
    run = tracker.start_run("odd names", {"data.file.data/q&a@v2.jsonl": "sha256 ..."})
    run.log_metrics({"eval/q&a@v2/accuracy": 0.5}, 3)
    run.set_tags({"eval.q&a@v2.task_version": "1"})
    run.finish("finished")
    logged_run = _client(project.root).get_run(run.link.run_id).data
    assert logged_run.params["data.file.data/q_a_v2.jsonl"] == "sha256 ..."
    assert logged_run.metrics["eval/q_a_v2/accuracy"] == 0.5
    assert logged_run.tags["eval.q_a_v2.task_version"] == "1"
    assert warnings == []
