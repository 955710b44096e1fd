"""Budgets that stop work mid-way on the real engine: a sweep (every running point at a
checkpoint, the others left pending, exit code 6, `--resume` finishing it once the budget is
raised), `chief eval` and `chief select` between suite tasks (only whole eval runs recorded);
and the SDK sessions of a sweep's recipe samplers and of select's suites attributed, so
`chief cost --sweep` finds the engine's bill equal to chief's count."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.spend.test_budget import one_error, set_budget
from tests.training.conftest import make_project
from tinker_chief.planning import load_project
from tinker_chief.registry import Registry
from tinker_chief.spend.budget import Tokens, plan_estimates, pricer_of, training_estimate

from cli_support import chief_in_process, run_chief
from jsonl_support import read_jsonl, write_jsonl

# An eval suite whose first task costs more than the plan can know: its LLM judge (the model
# itself) reads a long grading prompt per answer, which the plan's estimate leaves out.
SUITE = {
    "tasks": [
        {
            "name": "judged",
            "layer": "product",
            "kind": "jsonl",
            "data": "data/qa.jsonl",
            "grader": "llm_judge:max_tokens=4",
            "settings": {"max_tokens": 4, "limit": 4},
        },
        {
            "name": "heldout_nll",
            "layer": "training",
            "kind": "nll",
            "data": "data/heldout.jsonl",
            "headline_metric": "nll",
        },
    ]
}
# 6 steps of batch 4, a checkpoint every 2; the held-out NLL at steps 0, 3 and 6 costs about as
# many tokens as the training itself, and the plan's estimate of a run leaves it out.
SWEEP_PROJECT = {
    "schedule": {"batch_size": 4, "epochs": 1},
    "checkpoints": {"every_steps": 2},
    "inline_evals": {"nll_every_steps": 3},
    "eval_suite": SUITE,
}


def suite_project(root: Path, **sections: object) -> Path:
    project = make_project(root, **sections)
    heldout = read_jsonl(project / "data" / "heldout.jsonl")
    qa = [
        {"input": r["messages"][0]["content"], "output": r["messages"][1]["content"]}
        for r in heldout
    ]
    write_jsonl(project / "data" / "qa.jsonl", qa)
    return project


def registry(project: Path) -> Registry:
    return Registry.open(project / ".chief" / "registry.db", create=False)


def spent_tokens(project: Path) -> int:
    with registry(project) as reg:
        usage = reg.spent()["tiny-random-llama"]
    return (usage.train_tokens or 0) + (usage.prefill_tokens or 0) + (usage.sample_tokens or 0)


def sweep_state(project: Path) -> dict:
    (state,) = (project / ".chief" / "sweeps").glob("*/sweep.json")
    return json.loads(state.read_text())


def largest_step(project: Path, run_id: str) -> int:
    rows = read_jsonl(project / ".chief" / "runs" / run_id / "metrics.jsonl")
    return max(int(r["train/tokens"]) for r in rows if "train/loss" in r)


@dataclass
class StoppedSweep:
    project: Path
    budget: int
    stopped: subprocess.CompletedProcess  # `chief sweep` under the budget
    state: dict  # sweep.json when the budget stopped it
    spent: int  # the project's count then
    resumed: subprocess.CompletedProcess  # `chief sweep --resume`, the budget raised
    resumed_state: dict
    run_statuses: dict[str, str]  # run.json's status of each run when the budget stopped them


@pytest.fixture(scope="module")
def stopped_sweep(tmp_path_factory, engine) -> StoppedSweep:
    """Three points, two at a time, under a budget of the plan's three runs: the points' inline
    evals take the two running ones to the budget before they finish, so the third never
    starts; then `chief sweep --resume` with the budget raised."""
    project = suite_project(tmp_path_factory.mktemp("sweep"), **SWEEP_PROJECT)
    one_run = training_estimate(load_project(project), pricer_of(load_project(project)))
    budget = 3 * one_run.total  # the plan's three runs fit: the refusal up front lets it start
    set_budget(project, max_tokens=budget)
    args = ("sweep", "-p", str(project), "--base-url", engine.base_url)
    stopped = run_chief(*args, "--lr-multipliers", "0.5,1,2", "--parallel", "2")
    state, spent = sweep_state(project), spent_tokens(project)
    runs = project / ".chief" / "runs"
    statuses = {d.name: json.loads((d / "run.json").read_text())["status"] for d in runs.iterdir()}
    set_budget(project, max_tokens=10 * budget)
    resumed = run_chief(*args, "--resume")
    return StoppedSweep(
        project, budget, stopped, state, spent, resumed, sweep_state(project), statuses
    )


def test_a_budget_stops_a_sweep_at_checkpoints_and_resume_finishes_it(stopped_sweep):
    s, runs = stopped_sweep, stopped_sweep.project / ".chief" / "runs"
    assert s.stopped.returncode == 6, s.stopped.stdout + s.stopped.stderr
    line = one_error(s.stopped.stderr)
    assert line.startswith(
        f"Error: budget: the sweep stopped before the project crossed max_tokens = {s.budget:,}"
    )
    assert f"spent {s.spent:,} tokens; 2 point(s) stopped at a checkpoint, 1 not started" in line
    assert line.endswith(
        "raise [budget] max_usd / max_tokens in chief.toml (or pass --max-usd), then continue "
        "with `chief sweep --resume`"
    )
    points = {p["name"]: p for p in s.state["points"]}
    assert s.state["status"] == "budget"
    assert [p["status"] for p in points.values()] == ["budget", "budget", "pending"]
    stopped = [p for p in points.values() if p["status"] == "budget"]
    for point in stopped:  # each stopped mid-way, at a checkpoint registered at that step
        assert 0 < point["steps_done"] < point["total_steps"] == 6
        run = runs / point["run_id"]
        assert s.run_statuses[point["run_id"]] == "budget"
        steps = [c["step"] for c in read_jsonl(run / "checkpoints.jsonl")]
        assert point["steps_done"] in steps
        with registry(s.project) as reg:
            assert reg.get_model(point["candidate"]).training_step == point["steps_done"]
    assert points["lr2x-r4"]["run_id"] is None  # never started
    # Nothing ran past the budget but the one step concurrent points may overlap by.
    assert s.spent <= s.budget + max(largest_step(s.project, p["run_id"]) for p in stopped)

    assert s.resumed.returncode == 0, s.resumed.stdout + s.resumed.stderr
    assert s.resumed_state["status"] == "finished"
    after = {p["name"]: p for p in s.resumed_state["points"]}
    assert all(p["status"] == "finished" and p["steps_done"] == 6 for p in after.values())
    for point in stopped:  # the stopped runs went on from their checkpoints, every step once
        assert after[point["name"]]["run_id"] == point["run_id"]
        rows = read_jsonl(runs / point["run_id"] / "metrics.jsonl")
        assert [r["step"] for r in rows if "train/loss" in r] == [1, 2, 3, 4, 5, 6]
    assert len(list(runs.iterdir())) == 3


def test_eval_stops_between_tasks_and_records_only_whole_runs(tmp_path, engine, capsys):
    project = suite_project(tmp_path, eval_suite=SUITE)
    suite = eval_estimates(project)
    set_budget(project, max_tokens=sum(t.total for t in suite.values()))  # the plan's suite fits
    args = ("eval", "tiny-random-llama", "-p", str(project), "--base-url", engine.base_url)
    code, out, err = chief_in_process(capsys, *args)
    line = one_error(err)
    assert code == 6, out + err
    assert line.startswith(
        f"Error: budget: the next task (heldout_nll, ~{suite['heldout_nll'].total:,} tokens)"
    )
    assert "stopped after 1 of 2 tasks, the finished tasks are recorded: raise [budget]" in line
    assert line.endswith(
        "then run `chief eval tiny-random-llama` again (finished tasks are reused)"
    )
    assert "judged" in out and "heldout_nll" not in out  # what did run is printed
    with registry(project) as reg:
        (judged,) = reg.eval_runs("base/tiny-random-llama")
        # Recorded whole: all 4 answers judged (the tiny model's verdicts never parse).
        assert judged.task == "judged" and judged.metrics["unscored"].value == 4
    assert spent_tokens(project) == judged.usage.prefill_tokens + judged.usage.sample_tokens

    set_budget(project, max_tokens=10 * spent_tokens(project))
    code, out, err = chief_in_process(capsys, *args)
    assert code == 0, out + err
    with registry(project) as reg:
        runs = reg.eval_runs("base/tiny-random-llama")
    assert sorted(r.task for r in runs) == ["heldout_nll", "judged"]  # the judged task reused


def test_select_stops_between_tasks_and_its_evals_are_billed_to_the_sweep(
    stopped_sweep, engine, capsys
):
    project, sweep_id = stopped_sweep.project, stopped_sweep.resumed_state["sweep_id"]
    suite = eval_estimates(project)
    before = spent_tokens(project)
    set_budget(
        project, max_tokens=before + 2 * sum(t.total for t in suite.values())
    )  # 2 suites fit
    args = (
        "select",
        "-p",
        str(project),
        "--base-url",
        engine.base_url,
        "--shortlist",
        "2",
        "--task",
        "heldout_nll",
    )
    code, out, err = chief_in_process(capsys, *args)
    line = one_error(err)
    assert code == 6, out + err
    assert line.startswith("Error: budget: the next task (heldout_nll, ~")
    assert (
        "stopped at candidate 1 of 2 (tiny:v" in line
        and "nothing chosen, the finished tasks are recorded" in line
    )
    assert line.endswith("then run `chief select` again (finished tasks are reused)")
    with registry(project) as reg:
        assert reg.selections(f"sweep:{sweep_id}") == []
        evaluated = [r for m in reg.list_models() for r in reg.eval_runs(m.ref)]
        assert [r.task for r in evaluated] == ["judged"] and evaluated[0].metrics[
            "unscored"
        ].value == 4

    set_budget(project, max_tokens=10 * spent_tokens(project))
    code, out, err = chief_in_process(capsys, *args)
    assert code == 0, out + err
    with registry(project) as reg:
        assert len(reg.selections(f"sweep:{sweep_id}")) == 1
        evaluated = [r for m in reg.list_models() for r in reg.eval_runs(m.ref)]
    assert sorted(r.task for r in evaluated) == ["heldout_nll", "heldout_nll", "judged", "judged"]

    # The sweep's points and select's suites, each in its own SDK session: billed == counted.
    report = cost(capsys, project, engine, "--sweep", sweep_id)
    scopes = [item["scope"].split(":")[0] for item in report["items"]]
    assert sorted(scopes) == ["eval", "eval", "eval", "run", "run", "run"], report["items"]
    for item in report["items"]:
        assert item["sweep"] == sweep_id and item["estimate"] is not None
        assert item["billed"] == item["counted"] and item["counted"]["total"] > 0, item
    labels = [item["label"] for item in report["items"] if item["scope"].startswith("eval:")]
    assert all(label.startswith("chief select: the suite on tiny:v") for label in labels)


def test_a_sweeps_recipe_samplers_are_billed_to_its_points(tmp_path, engine, capsys):
    # Prompt distillation: each point's teacher labels its data through a sampler of its own.
    project = make_project(
        tmp_path,
        recipe="distill",
        n_train=8,
        # The random tiny teacher's greedy answer is often empty; sampling gives it something.
        distill={"teacher_prompt": "Answer in one word.", "temperature": 1.0, "max_tokens": 8},
        schedule={"batch_size": 4, "steps": 2},
        checkpoints={"every_steps": 0},
        inline_evals={"nll_every_steps": 0},
        data={"val": None},
    )
    args = ("sweep", "-p", str(project), "--base-url", engine.base_url, "--lr-multipliers", "0.5,2")
    code, out, err = chief_in_process(capsys, *args)
    assert code == 0, out + err
    report = cost(capsys, project, engine, "--sweep", sweep_state(project)["sweep_id"])
    assert len(report["items"]) == 2
    for item in report["items"]:
        assert item["counted"]["sample"] > 0  # the teacher's answers
        assert item["billed"] == item["counted"], item


def eval_estimates(project: Path) -> dict[str, Tokens]:
    """The plan's estimate of each suite task (as the budget counts it)."""
    config = load_project(project)
    pricer = pricer_of(config)
    evals = plan_estimates(config).eval_sampling
    assert evals is not None
    return {
        t.task: pricer.tokens("tiny-random-llama", 0, t.prefill_tokens or 0, t.sample_tokens or 0)
        for t in evals.tasks
    }


def cost(capsys, project: Path, engine, *args: str) -> dict:
    code, out, err = chief_in_process(
        capsys, "cost", *args, "--project", str(project), "--base-url", engine.base_url, "--json"
    )
    assert code == 0, err
    return json.loads(out)
