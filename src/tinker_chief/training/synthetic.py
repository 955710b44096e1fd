"""The demo's synthetic skill: "What is the secret code for <word>?" -> "<word>-<word>-7".

A copy-style rule the model can apply token by token, so a couple of minutes of LoRA on CPU
moves held-out exact match from ~0% to most answers right (the reference measurement on
SmolLM2 went 0% -> 76% with this rule). Words are pronounceable pseudo-words built from
syllables with a seeded generator: deterministic, no word list shipped, and never seen in
pre-training as "secret codes". Rows are chats (`{"messages": [...]}`), the one format every
consumer takes: training, held-out NLL, and the planner's product-eval file.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

_CONSONANTS = "bdfgklmnprstvz"
_VOWELS = "aeiou"
QUESTION = "What is the secret code for {word}?"


def secret_code(word: str) -> str:
    return f"{word}-{word}-7"


def pseudo_words(count: int, seed: int = 0) -> list[str]:
    """`count` distinct two- or three-syllable words, the same for the same seed."""
    rng = np.random.default_rng(seed)
    syllables = [c + v for c in _CONSONANTS for v in _VOWELS]
    words: list[str] = []
    seen: set[str] = set()
    while len(words) < count:
        word = "".join(syllables[i] for i in rng.integers(0, len(syllables), size=int(rng.integers(2, 4))))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


def secret_code_rows(n_train: int = 200, n_heldout: int = 50, seed: int = 0) -> tuple[list[dict], list[dict]]:
    rows = [{"messages": [{"role": "user", "content": QUESTION.format(word=w)},
                          {"role": "assistant", "content": secret_code(w)}]}
            for w in pseudo_words(n_train + n_heldout, seed)]
    return rows[:n_train], rows[n_train:]


def write_secret_code_skill(directory: Path, n_train: int = 200, n_heldout: int = 50,
                            seed: int = 0) -> tuple[Path, Path]:
    """Write `train.jsonl` and `heldout.jsonl` under `directory`; returns their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = directory / "train.jsonl", directory / "heldout.jsonl"
    for path, rows in zip(paths, secret_code_rows(n_train, n_heldout, seed), strict=True):
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return paths
