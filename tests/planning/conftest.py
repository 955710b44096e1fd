"""Fixtures for planning tests: small JSONL writers and a tiny-model project."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("CHIEF_CACHE_DIR", "/tmp/chiefcache")


def write_jsonl(path: Path, rows: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


def chat(question: str, answer: str, system: str | None = None) -> dict:
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    return {"messages": messages}


SECRET_WORDS = ["apple", "river", "copy", "excess", "stone", "cloud", "tiger", "paper"]


def secret_rows(n: int) -> list[dict]:
    """The demo-style synthetic skill: `What is the secret code for W?` -> `W-W-7`."""
    return [chat(f"What is the secret code for {w}?", f"{w}-{w}-7")
            for w in (SECRET_WORDS[i % len(SECRET_WORDS)] + str(i) for i in range(n))]


@pytest.fixture
def train_file(tmp_path) -> Path:
    return write_jsonl(tmp_path / "input" / "train.jsonl", secret_rows(40))


@pytest.fixture
def val_file(tmp_path) -> Path:
    return write_jsonl(tmp_path / "input" / "val.jsonl", secret_rows(48)[40:])
