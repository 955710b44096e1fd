"""RL that learns out of the box: the reward grader follows the answers, and a run (or a dry probe)
whose groups all earn equal rewards says so instead of training on zero advantages.

Runs use the session's engine (tiny-random-llama), whose answers are random bytes: a grader that
needs an exact match never says correct, which is exactly the silent zero signal to catch.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from tests.training.conftest import make_project
from tinker_chief.exit_codes import ExitCode
from tinker_chief.planning import load_project
from tinker_chief.planning.rewards import recommend_grader
from tinker_chief.training import train_project

from cli_support import run_chief
from jsonl_support import read_jsonl, write_jsonl

ARITHMETIC = [
    {"prompt": f"What is {i} + {i + 3}? Reply with only the number.", "answer": str(2 * i + 3)}
    for i in range(24)
]


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        (["7", "12", "-3", "1,024", "0.5", "3/4"], "numeric"),
        (["B", "(C)", "A) Paris", "D."], "multiple_choice"),
        (["Paris", "the blue whale", "Ada Lovelace"], "normalized_exact"),
        (
            ["A function that returns the sum of its two arguments after checking their types."],
            "llm_judge",
        ),
        (["7", "Paris", "B", "the blue whale"], "normalized_exact"),  # no kind covers 90%
    ],
)
def test_the_reward_grader_follows_what_the_answers_look_like(
    answers: list[str], expected: str
) -> None:
    recommendation, alternative, counts = recommend_grader(answers)
    assert recommendation.value == expected
    assert sum(counts.values()) == len(answers) and alternative and recommendation.rule


def test_init_writes_the_numeric_reward_for_number_answers_and_the_plan_says_why(
    tmp_path: Path,
) -> None:
    write_jsonl(tmp_path / "problems.jsonl", ARITHMETIC)
    project = tmp_path / "rlp"
    made = run_chief(
        "init", "-p", str(project), "--use-case", "math", "--recipe", "rl",
        "-m", "tiny-random-llama", "--train", str(tmp_path / "problems.jsonl"),
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    config = tomllib.loads((project / "chief.toml").read_text())
    assert config["rl"]["grader"] == "numeric"
    product = [t for t in config["eval_suite"]["tasks"] if t["layer"] == "product"]
    assert [t["grader"] for t in product] == ["numeric"]  # held-out answers graded like the reward
    planned = run_chief("plan", "-p", str(project))
    assert planned.returncode == 0, planned.stderr
    markdown = (project / "plan.md").read_text()
    assert "**Grader: numeric** (recommended)" in markdown and "answers are numbers" in markdown
    assert (
        json.loads((project / "plan.json").read_text())["reward"]["recommended"]["value"]
        == "numeric"
    )


def test_plan_warns_when_the_configured_reward_does_not_fit_the_answers(tmp_path: Path) -> None:
    project = make_project(tmp_path, recipe="rl", rl={"grader": "exact"}, data={"val": None})
    write_jsonl(project / "data" / "train.jsonl", ARITHMETIC)
    planned = run_chief("plan", "-p", str(project))
    assert planned.returncode == 0, planned.stderr
    assert "[rl] grader is 'exact' but the answers suggest 'numeric'" in planned.stdout


def _never_matching_project(tmp_path: Path, **rl: object) -> Path:
    project = make_project(
        tmp_path,
        recipe="rl",
        rl={"group_size": 2, "groups_per_batch": 2, "max_tokens": 4, "grader": "exact", **rl},
        schedule={"steps": 4},
        checkpoints={"every_steps": 0},
        inline_evals={"nll_every_steps": 0},
        data={"val": None},
    )
    write_jsonl(project / "data" / "train.jsonl", ARITHMETIC[:8])
    return project


def test_a_run_without_learning_signal_stops_after_the_check_and_resumes_when_told(
    tmp_path: Path, engine
) -> None:
    project = _never_matching_project(tmp_path)
    stopped = run_chief("train", "--project", str(project), "--base-url", engine.base_url)
    assert stopped.returncode == ExitCode.STOPPED  # not an error's 1: a script can tell them apart
    errors = [line for line in stopped.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "after 2 step(s), no learning signal" in errors[0], stopped.stderr
    assert "grader `exact` never said correct" in errors[0] and "Traceback" not in stopped.stderr
    run_dir = next((project / ".chief" / "runs").iterdir())
    status = json.loads((run_dir / "run.json").read_text())
    assert (status["status"], status["steps_done"]) == ("stopped", 2)
    rows = [r for r in read_jsonl(run_dir / "metrics.jsonl") if "train/reward" in r]
    assert [r["train/groups_with_signal"] for r in rows] == [0.0, 0.0]
    # Told to go on: the resumed run is past the check window and finishes.
    result = train_project(load_project(project), base_url=engine.base_url, resume=True)
    assert (result.status, result.steps_done) == ("finished", 4)


def test_on_zero_signal_warn_goes_on_and_reports_the_warning(tmp_path: Path, engine) -> None:
    project = _never_matching_project(tmp_path, on_zero_signal="warn")
    result = train_project(load_project(project), base_url=engine.base_url)
    assert (result.status, result.steps_done, result.reason) == ("finished", 4, None)
    assert len(result.warnings) == 1 and "no learning signal" in result.warnings[0]


def test_probe_rewards_samples_the_base_model_and_flags_a_grader_that_never_matches(
    tmp_path: Path, engine
) -> None:
    project = _never_matching_project(tmp_path)
    probed = run_chief(
        "plan", "-p", str(project), "--probe-rewards", env={"CHIEF_ENGINE_URL": engine.base_url}
    )
    assert probed.returncode == 0, probed.stderr
    assert (
        "Reward probe (8 prompts x 2 rollouts of the base model, grader exact): mean reward 0.00"
        in probed.stdout
    )
    assert (
        "0% of groups with signal" in probed.stdout
        and "warning: no learning signal" in probed.stdout
    )
