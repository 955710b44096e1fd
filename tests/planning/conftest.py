"""Fixtures for planning tests: chat rows, the secret-code skill and its train/val files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from jsonl_support import write_jsonl


def chat(question: str, answer: str, system: str | None = None) -> dict:
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": question},
        {"role": "assistant", "content": answer},
    ]
    return {"messages": messages}


SECRET_WORDS = ["apple", "river", "copy", "excess", "stone", "cloud", "tiger", "paper"]


def secret_rows(n: int) -> list[dict]:
    """The demo-style synthetic skill: `What is the secret code for W?` -> `W-W-7`."""
    return [
        chat(f"What is the secret code for {w}?", f"{w}-{w}-7")
        for w in (SECRET_WORDS[i % len(SECRET_WORDS)] + str(i) for i in range(n))
    ]


@pytest.fixture
def train_file(tmp_path) -> Path:
    return write_jsonl(tmp_path / "input" / "train.jsonl", secret_rows(40))


@pytest.fixture
def val_file(tmp_path) -> Path:
    return write_jsonl(tmp_path / "input" / "val.jsonl", secret_rows(48)[40:])


@pytest.fixture(autouse=True)
def private_calibration_cache(tmp_path_factory, monkeypatch) -> Path:
    """A chief cache of this test's own whose `models` (the built models) and `engine-keys` (how
    `--base-url` finds the session engine's key) are the shared ones: a throughput probe
    (`chief plan --calibrate`) measured on this machine, by a developer or another test, never
    changes the time estimate another plan test expects."""
    shared = Path(os.environ["CHIEF_CACHE_DIR"])
    cache = tmp_path_factory.mktemp("chief-cache")
    for name in ("models", "engine-keys"):
        (shared / name).mkdir(mode=0o700, parents=True, exist_ok=True)
        (cache / name).symlink_to((shared / name).resolve())
    monkeypatch.setenv("CHIEF_CACHE_DIR", str(cache))
    return cache
