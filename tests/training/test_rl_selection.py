"""RL is judged by its reward wherever training is judged: the report draws each RL run's reward
per step, `chief sweep` ranks RL points by their final reward (higher is better), and `chief
select` chooses among RL checkpoints by the reward of their greedy answers to the held-out
prompts, graded by the project's `[rl] grader`, not by an NLL or a loss.

Runs use the session's engine (tiny-random-llama). Its answers are random, so the rewards come
from test graders that decide deterministically: one that gives training a signal (even-length
answers) and one that accepts exactly the answers one chosen checkpoint gave, which makes that
checkpoint the certain winner of the held-out reward.
"""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from tests.training.conftest import make_project
from tinker_chief.cli.main import cli
from tinker_chief.connection import choose_backend, open_connection
from tinker_chief.evals.graders.base import GradeInput, Grader, Verdict, grader
from tinker_chief.planning import load_project, save_project
from tinker_chief.registry import Registry
from tinker_chief.reports import charts
from tinker_chief.reports.collect import collect
from tinker_chief.training.from_project import spec_from_project
from tinker_chief.training.runlog import RunLog
from tinker_chief.training.session import prepare
from tinker_chief.workflows.reward_probe import HeldOutReward
from tinker_chief.workflows.sweeping import Sweep, SweepPoint, run_results, summarize

from jsonl_support import write_jsonl

PROBLEMS = [
    {"prompt": f"What is {i} + {i + 3}? Reply with only the number.", "answer": str(2 * i + 3)}
    for i in range(16)
]
RECORDED: dict[str, str] = {}  # question -> the answer the recording grader saw


@grader("test_even_length")
class _EvenLength(Grader):
    """Rewards answers of even length: random answers split about evenly, so groups carry signal."""

    async def grade(self, item: GradeInput) -> Verdict:
        return Verdict(correct=len(item.response) % 2 == 0)


@grader("test_record")
class _Record(Grader):
    async def grade(self, item: GradeInput) -> Verdict:
        RECORDED[item.question] = item.response
        return Verdict(correct=False)


@grader("test_as_recorded")
class _AsRecorded(Grader):
    """Correct exactly when the answer is the one recorded for the question."""

    async def grade(self, item: GradeInput) -> Verdict:
        return Verdict(correct=RECORDED.get(item.question) == item.response)


def _rl_project(root: Path) -> Path:
    project = make_project(
        root,
        recipe="rl",
        rl={"group_size": 4, "groups_per_batch": 4, "max_tokens": 6, "grader": "test_even_length"},
        schedule={"steps": 3},
        checkpoints={"every_steps": 0},
        inline_evals={"nll_every_steps": 0},
    )
    write_jsonl(project / "data" / "train.jsonl", PROBLEMS[:12])
    write_jsonl(project / "data" / "heldout.jsonl", PROBLEMS[12:])
    return project


def _set_grader(project: Path, name: str) -> None:
    loaded = load_project(project)
    loaded.config.rl.grader = name
    save_project(loaded)


def test_an_rl_sweep_is_ranked_reported_and_selected_by_reward(tmp_path: Path, engine) -> None:
    project = _rl_project(tmp_path / "p")
    swept = CliRunner().invoke(
        cli,
        [
            "sweep",
            "--project",
            str(project),
            "--base-url",
            engine.base_url,
            "--lr-multipliers",
            "0.1,30",
        ],
    )
    assert swept.exit_code == 0, swept.output
    (sweep_file,) = (project / ".chief" / "sweeps").glob("*/sweep.json")
    sweep = json.loads(sweep_file.read_text())
    points = sweep["points"]
    assert all(isinstance(p["final_reward"], float) for p in points)
    assert sweep["summary"]["metric"] == "train/reward" and sweep["summary"]["higher_is_better"]
    assert (
        "ranked by final reward (mean of the last steps) (train/reward; higher is better)"
        in swept.output
    )

    # The report: a reward curve per RL run, drawn in its own panel.
    data = collect(project)
    assert {len(run.reward) for run in data.runs} == {3}  # (step, train/reward) of every step
    figure = charts.learning_curves_figure(data.runs)
    (reward_ax,) = [ax for ax in figure.axes if ax.get_title() == "RL reward"]
    assert (
        reward_ax.get_ylabel() == "mean reward (train/reward)" and len(reward_ax.get_lines()) == 2
    )
    assert [p.final_reward for p in data.sweeps[0].points] == [p["final_reward"] for p in points]

    # The checkpoint that selection by the train loss would not take gives the answers that count.
    winner, loser = sorted(points, key=lambda p: -p["final_loss"])
    RECORDED.clear()
    _set_grader(project, "test_record")
    with open_connection(choose_backend(None, engine.base_url)) as connection:
        loaded = load_project(project)
        with Registry.open(loaded.registry_path) as registry:
            path = registry.get_model(winner["candidate"]).tinker_path
        HeldOutReward(prepare(spec_from_project(loaded), project), connection)(path)
    assert len(RECORDED) == 4
    _set_grader(project, "test_as_recorded")

    selected = CliRunner().invoke(
        cli, ["select", "--project", str(project), "--base-url", engine.base_url]
    )
    assert selected.exit_code == 0, selected.output
    with Registry.open(project / ".chief" / "registry.db") as registry:
        (mark,) = registry.selections(f"sweep:{sweep['sweep_id']}")
    assert mark.model_ref == winner["candidate"]  # by the train loss, the other one
    rewards = mark.details["heldout"]["rewards"]
    assert rewards[winner["candidate"]] == 1.0
    assert rewards[loser["candidate"]] < 1.0, (
        "the two checkpoints answered alike: no winner to find"
    )
    assert (mark.details["task"], mark.details["metric"]) == ("heldout", "reward")
    assert mark.details["runner_up"] == loser["candidate"]  # paired on the same four prompts:
    assert mark.details["test"]["method"].startswith("mcnemar")  # McNemar on the greedy answers
    assert (
        mark.details["heldout"]["prompts"] == 4
        and mark.details["heldout"]["grader"] == "test_as_recorded"
    )
    assert (
        f"chosen: {winner['candidate']}" in selected.output and "held-out reward" in selected.output
    )


def _finished_point(
    project: Path, name: str, losses: list[float], rewards: list[float]
) -> SweepPoint:
    log = RunLog.create(project, {"name": name}, {})
    for step, (loss, reward) in enumerate(zip(losses, rewards, strict=True), start=1):
        log.log_metrics(step, {"train/loss": loss, "train/reward": reward})
    results = run_results(log.dir)
    return SweepPoint(
        name, 1.0, 1e-3, 4, 8, log.dir.name, "finished", None, len(losses), len(losses), None,
        results.loss, results.reward,
    )  # fmt: skip


def test_rl_sweep_points_rank_by_final_reward_higher_first(tmp_path: Path) -> None:
    """The point with the lower loss has the lower reward: the reward decides, and higher wins."""
    low_loss = _finished_point(tmp_path, "lr1x-r4", [0.5] * 10, [0.2] * 9 + [0.3])
    high_reward = _finished_point(tmp_path, "lr2x-r4", [0.9] * 10, [0.2] * 9 + [0.8])
    high_reward.learning_rate = 2e-3
    assert (high_reward.final_reward, low_loss.final_reward) == (0.8, 0.3)  # the last 10% of steps
    sweep = Sweep("s", tmp_path, "hash", 1e-3, 4, 8, None, [low_loss, high_reward])
    (rank,) = summarize(sweep)["per_rank"]
    assert (rank["best_point"], rank["metric"], rank["best_value"]) == (
        "lr2x-r4",
        "train/reward",
        0.8,
    )
    assert rank["higher_is_better"] is True
