"""Fixtures for training tests: projects written through the planner's real `chief.toml`
schema, trained on the session's one real engine (`engine`, tiny-random-llama, float32, in
tests/conftest.py).

Runs reach the engine with `--base-url`, as `chief train` does against any running engine; a
fresh engine per run would only add start-up time. Nothing is faked: Tinker's cloud is never
involved (the cloud tests only check that a missing key is refused before anything starts).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tinker_chief.training.synthetic import write_secret_code_skill

TINY = "tiny-random-llama"


def make_project(
    root: Path, recipe: str = "sl", n_train: int = 24, n_heldout: int = 8, **sections: Any
) -> Path:
    """A tiny project on tiny-random-llama with the secret-code skill (or `data` for other
    recipes)."""
    from tinker_chief.planning import parse_config, save_project

    write_secret_code_skill(root / "data", n_train, n_heldout)
    config: dict[str, Any] = {
        "name": "tiny",
        "base_model": TINY,
        "renderer": "chatml",
        "recipe": recipe,
        "seed": 3,
        "data": {"train": "data/train.jsonl", "val": "data/heldout.jsonl", "max_length": 64},
        "lora": {"rank": 4, "train_unembed": False},
        "optimizer": {"learning_rate": 1e-3},
        "schedule": {"batch_size": 8, "epochs": 2},
        "checkpoints": {"every_steps": 2},
        "inline_evals": {"nll_every_steps": 3},
        "eval_suite": {"name": "tiny-suite", "tasks": []},
    }
    for key, value in sections.items():
        config[key] = {**config.get(key, {}), **value} if isinstance(value, dict) else value
    save_project(root, parse_config(config))
    return root


def only_run(project: Path) -> Path:
    runs = sorted((project / ".chief" / "runs").iterdir())
    assert len(runs) == 1, runs
    return runs[0]
