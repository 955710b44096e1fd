"""Budgets on the real engine: `chief train` refused up front, stopped mid-run at a checkpoint
with exit code 5 and resumed once the budget is raised; bad budgets get one line each."""

from __future__ import annotations

import json
from pathlib import Path

from tests.training.conftest import make_project
from tinker_chief.planning import load_project
from tinker_chief.registry import Registry
from tinker_chief.spend.budget import pricer_of, training_estimate

from cli_support import chief_in_process


def one_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, err
    return lines[0]


def set_budget(project: Path, **budget: object) -> None:
    from tinker_chief.planning import save_project

    config = load_project(project).config
    save_project(
        project, config.model_copy(update={"budget": config.budget.model_copy(update=budget)})
    )


def test_a_run_over_budget_is_refused_before_it_starts(tmp_path, engine, capsys):
    project = make_project(tmp_path, budget={"max_tokens": 1000})
    code, _, err = chief_in_process(
        capsys, "train", "--project", str(project), "--base-url", engine.base_url
    )
    line = one_error(err)
    assert code == 6 and line.startswith(
        "Error: budget: chief train would use ~3,072 tokens, over max_tokens = 1,000"
    )
    assert "spent so far 0 tokens" in line and "remaining 1,000 tokens; raise [budget]" in line
    assert not (project / ".chief" / "runs").exists()  # nothing started


def test_a_run_stops_at_a_checkpoint_and_resumes_once_raised(tmp_path, engine, capsys):
    project = make_project(tmp_path)
    estimate = training_estimate(load_project(project), pricer_of(load_project(project)))
    set_budget(project, max_tokens=estimate.total)  # the plan fits; the inline evals' tokens do not
    args = ("train", "--project", str(project), "--base-url", engine.base_url)
    code, out, err = chief_in_process(capsys, *args)
    line = one_error(err)
    assert code == 6 and line.startswith("Error: budget: the next step would take the project to")
    assert "stopped at step 4/6 with a checkpoint" in line and "chief train --resume" in line
    run = next((project / ".chief" / "runs").iterdir())
    status = json.loads((run / "run.json").read_text())
    assert (status["status"], status["steps_done"]) == ("budget", 4)
    with Registry.open(project / ".chief" / "registry.db", create=False) as reg:
        spent = reg.spent()["tiny-random-llama"]
        assert [m.training_step for m in reg.list_models()] == [2, 4]
    assert spent.train_tokens + spent.prefill_tokens <= estimate.total  # never crossed

    code, _, err = chief_in_process(capsys, *args, "--resume")  # the rest does not fit either
    assert code == 6 and one_error(err).startswith(
        "Error: budget: chief train would use ~1,024 tokens"
    )

    set_budget(project, max_tokens=estimate.total * 2)
    code, out, err = chief_in_process(capsys, *args, "--resume")
    assert code == 0, err
    assert "(resuming at step 4)" in out and "finished: 6/6 steps" in out
    assert json.loads((run / "run.json").read_text())["status"] == "finished"


def test_bad_budgets_get_one_line(tmp_path, engine, capsys):
    project = make_project(tmp_path)
    args = ("train", "--project", str(project), "--base-url", engine.base_url)
    code, _, err = chief_in_process(capsys, *args, "--max-usd", "ten")
    assert (
        code == 1
        and one_error(err)
        == "Error: --max-usd: expected a non-negative number of US dollars, got 'ten'"
    )
    code, _, err = chief_in_process(capsys, *args, "--max-usd", "-1")
    assert code == 1 and "got '-1'" in one_error(err)

    code, _, err = chief_in_process(capsys, *args, "--max-usd", "5")
    line = one_error(err)
    assert code == 1 and "a dollar budget (max_usd) needs a price for tiny-random-llama" in line
    assert line.endswith("add one ([estimates] prices_file) or set [budget] max_tokens instead")

    toml = project / "chief.toml"
    for bad, expected in (("-2", "greater than or equal to 0"), ('"ten"', "a valid number")):
        text = toml.read_text()
        assert "\n[budget]\n" in text  # the planner writes the section (empty: no limits)
        toml.write_text(text.replace("\n[budget]\n", f"\n[budget]\nmax_usd = {bad}\n"))
        code, _, err = chief_in_process(capsys, *args)
        line = one_error(err)
        assert code == 1 and "field `budget.max_usd`: expected" in line and expected in line
        toml.write_text(text)
    assert not (project / ".chief" / "runs").exists()


def test_a_dollar_budget_prices_the_estimate_at_the_table(tmp_path, engine, capsys):
    prices = tmp_path / "prices.toml"
    prices.write_text(
        """as_of = "2026-12-01"
source = "test table"
[models."tiny-random-llama"]
train = 1.0
prefill = 0.5
sample = 2.0
"""
    )
    project = make_project(tmp_path / "p", estimates={"prices_file": str(prices)})
    code, _, err = chief_in_process(
        capsys,
        "train",
        "--project",
        str(project),
        "--base-url",
        engine.base_url,
        "--max-usd",
        "0.001",
    )
    line = one_error(err)
    assert code == 6 and "would use ~3,072 tokens ($0.0031), over max_usd = $0.0010" in line
