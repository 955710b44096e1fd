"""Each non-SFT recipe runs end to end on the tiny model through the real SDK and engine:
DPO (custom loss via forward_backward_custom), RL (group sampling, importance_sampling, KL
penalty to the base), prompt distillation (teacher labels cached in the run directory)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from tests.training.conftest import make_project
from tinker_chief.evals.graders.base import GradeInput, Grader, Verdict, grader
from tinker_chief.planning import load_project
from tinker_chief.training import spec_from_project, train, train_project

from cli_support import chief_in_process
from jsonl_support import read_jsonl, write_jsonl

SHORT = {
    "schedule": {"batch_size": 4, "steps": 2},
    "checkpoints": {"every_steps": 0},
    "inline_evals": {"nll_every_steps": 0},
    "data": {"val": None},
}


def _train(project: Path, engine):
    return train_project(load_project(project), base_url=engine.base_url)


def _train_rows(result) -> list[dict]:
    return [r for r in read_jsonl(result.run_dir / "metrics.jsonl") if "train/loss" in r]


def test_dpo_trains_on_preference_pairs(tmp_path: Path, engine, capsys) -> None:
    project = make_project(tmp_path, recipe="dpo", **SHORT)
    write_jsonl(
        project / "data" / "train.jsonl",
        [
            {"prompt": f"Code for w{i}?", "chosen": f"w{i}-w{i}-7", "rejected": "I do not know."}
            for i in range(8)
        ],
    )
    result = _train(project, engine)
    rows = _train_rows(result)
    assert result.status == "finished" and [r["step"] for r in rows] == [1, 2]
    assert all(
        math.isfinite(r["train/loss"]) and 0.0 <= r["train/pair_accuracy"] <= 1.0 for r in rows
    )
    assert (
        abs(rows[0]["train/loss"] - math.log(2)) < 1e-3
    )  # policy == reference at step 1: -log sigmoid(0)
    assert result.final is not None and result.final.registry_ref == "tiny:v1"
    # Counted as billed: each step's custom loss is two training passes on the wire.
    code, out, err = chief_in_process(
        capsys, "cost", "--project", str(project), "--base-url", engine.base_url, "--json"
    )
    assert code == 0, err
    [run] = [item for item in json.loads(out)["items"] if item["scope"].startswith("run:")]
    assert run["billed"] == run["counted"] and run["counted"]["train"] == sum(
        r["train/tokens"] for r in rows
    )
    assert run["estimate"]["train"] >= run["counted"]["train"]


def test_rl_samples_groups_and_trains_with_a_kl_penalty(tmp_path: Path, engine) -> None:
    project = make_project(
        tmp_path,
        recipe="rl",
        rl={"group_size": 3, "groups_per_batch": 2, "max_tokens": 6, "kl_penalty_coef": 0.1},
        **SHORT,
    )
    write_jsonl(
        project / "data" / "train.jsonl",
        [{"prompt": f"Say {i}", "answer": str(i)} for i in range(4)],
    )
    result = _train(project, engine)
    rows = _train_rows(result)
    assert [r["step"] for r in rows] == [1, 2]
    for row in rows:
        assert 0.0 <= row["train/reward"] <= 1.0 and math.isfinite(row["kl_policy_base"])
        assert row["train/tokens"] > 0  # 2 prompts x 3 samples of prompt + sampled tokens


@grader("test_async_only_always_right")
class _AsyncOnlyGrader(Grader):
    """A model-free grader that implements only `grade()` (as a model-graded one does), no
    `check()`."""

    async def grade(self, item: GradeInput) -> Verdict:
        return Verdict(correct=bool(item.target))


def test_rl_rewards_come_from_any_grader_not_only_rule_graders(tmp_path: Path, engine) -> None:
    project = make_project(
        tmp_path, recipe="rl", rl={"group_size": 2, "groups_per_batch": 2, "max_tokens": 4}, **SHORT
    )
    write_jsonl(
        project / "data" / "train.jsonl",
        [{"prompt": f"Say {i}", "answer": str(i)} for i in range(4)],
    )
    spec = spec_from_project(load_project(project))
    spec = spec.model_copy(
        update={"rl": spec.rl.model_copy(update={"grader": "test_async_only_always_right"})}
    )
    rows = _train_rows(train(project, spec, base_url=engine.base_url))
    assert [r["step"] for r in rows] == [1, 2]
    assert all(r["train/reward"] == 1.0 for r in rows)  # every target is non-empty: all correct


def test_prompt_distillation_labels_with_the_teacher_prompt_once(tmp_path: Path, engine) -> None:
    project = make_project(
        tmp_path,
        recipe="distill",
        n_train=8,
        distill={"teacher_prompt": "Answer in one word."},
        **SHORT,
    )
    spec = spec_from_project(load_project(project))
    # The random tiny teacher's greedy answer is often empty; sampling gives it something to say.
    spec = spec.model_copy(
        update={"distill": spec.distill.model_copy(update={"temperature": 1.0, "max_tokens": 8})}
    )
    result = train(project, spec, base_url=engine.base_url)
    labelled = read_jsonl(result.run_dir / "distilled.jsonl")
    assert len(labelled) >= 4
    for (
        row
    ) in labelled:  # the student's data has no teacher prompt, only the user turn and the label
        roles = [m["role"] for m in row["messages"]]
        assert roles == ["user", "assistant"] and row["messages"][1]["content"].strip()
    assert [r["step"] for r in _train_rows(result)] == [1, 2]
