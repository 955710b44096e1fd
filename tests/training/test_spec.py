"""The training spec is chief.toml's sections themselves: a library caller who
builds a `TrainSpec` by hand gets the doctrine's defaults, and `chief train` copies nothing."""

from __future__ import annotations

import pytest

from tests.training.conftest import make_project
from tinker_chief.errors import TrainingError
from tinker_chief.planning import load_project, parse_config
from tinker_chief.training import TrainSpec, spec_from_project
from tinker_chief.training.spec import SECTIONS, stored_spec

REQUIRED = {
    "data": {"train": "data/train.jsonl"},
    "optimizer": {"learning_rate": 1e-4},
    "schedule": {"batch_size": 8},
}


def test_a_hand_built_spec_has_the_doctrines_defaults():
    spec = TrainSpec.model_validate({"base_model": "tiny-random-llama", **REQUIRED})
    config = parse_config(
        {
            "name": "p",
            "base_model": "tiny-random-llama",
            "renderer": "chatml",
            "eval_suite": {"name": "s", "tasks": []},
            **REQUIRED,
        }
    )
    for name in SECTIONS:
        assert getattr(spec, name) == getattr(config, name), name
    # The numbers the old hand-copied spec contradicted (rank 16, no unembedding, no clip, 512, 32).
    assert spec.lora.rank == 32 and spec.lora.train_unembed and spec.optimizer.grad_clip_norm == 1.0
    assert spec.data.max_length == 2048 and spec.rl.max_tokens == 64


def test_the_projects_spec_is_its_config_sections(tmp_path):
    project = load_project(
        make_project(
            tmp_path, recipe="rl", rl={"groups_per_batch": 3, "grader": "numeric", "loss_fn": "ppo"}
        )
    )
    spec = spec_from_project(project)
    for name in SECTIONS:
        assert getattr(spec, name) == getattr(project.config, name), name
    assert spec.batch_size == 3  # RL steps take groups_per_batch prompts
    assert (spec.rl.grader, spec.rl.loss_fn) == ("numeric", "ppo")  # settable in chief.toml now


def test_a_sweep_point_replaces_lr_rank_and_batch_and_nothing_else(tmp_path):
    spec = spec_from_project(load_project(make_project(tmp_path)))
    point = spec.with_hyperparameters(learning_rate=2e-3, rank=8, batch_size=4)
    assert (point.optimizer.learning_rate, point.lora.rank, point.batch_size) == (2e-3, 8, 4)
    unchanged = {"optimizer": {"learning_rate"}, "lora": {"rank"}, "schedule": {"batch_size"}}
    for name in SECTIONS:
        skip = unchanged.get(name, set())
        assert getattr(point, name).model_dump(exclude=skip) == getattr(spec, name).model_dump(
            exclude=skip
        )


def test_a_spec_json_of_an_older_chief_is_one_clear_error(tmp_path):
    old = {"base_model": "tiny-random-llama", "train_data": "data/train.jsonl", "lora_rank": 16}
    with pytest.raises(TrainingError, match=r"spec\.json: field .*start a new run"):
        stored_spec(old, tmp_path)
