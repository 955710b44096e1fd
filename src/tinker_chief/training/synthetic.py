"""The demo's synthetic skill: "What is the secret code for <word>?" -> "<word>-<word>-7".

A copy-style rule the model can apply token by token, so a couple of minutes of LoRA on CPU
moves held-out exact match from ~0% to most answers right (the reference measurement on
SmolLM2 went 0% -> 76% with this rule). Words are pronounceable pseudo-words built from
syllables with a seeded generator: deterministic, no word list shipped, and never seen in
pre-training as "secret codes". Rows are chats (`{"messages": [...]}`), the one format every
consumer takes: training, held-out NLL, and the planner's product-eval file.

Trained on the rule alone, the model over-generalizes it to "answer with a word copied from the
question": on the calibration suite's lettered questions it then answers the last option's
letter ("D" on 28 of 30) and calibration collapses. `contrast_rows` mixes in questions the rule
must not touch (arithmetic, counting letters, comparisons; answers computed, so always right),
the standard remedy of mixing other data into a narrow fine-tune.
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
        word = "".join(
            syllables[i] for i in rng.integers(0, len(syllables), size=int(rng.integers(2, 4)))
        )
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


def _chat(question: str, answer: str) -> dict:
    return {
        "messages": [
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer},
        ]
    }


def secret_code_rows(
    n_train: int = 200, n_heldout: int = 50, seed: int = 0
) -> tuple[list[dict], list[dict]]:
    rows = [
        _chat(QUESTION.format(word=w), secret_code(w))
        for w in pseudo_words(n_train + n_heldout, seed)
    ]
    return rows[:n_train], rows[n_train:]


def contrast_rows(count: int, seed: int = 0) -> list[dict]:
    """`count` questions outside the skill, each with its computed answer (seeded)."""
    rng = np.random.default_rng(seed + 1)
    words = pseudo_words(count, seed + 1)
    rows = []
    for index in range(count):
        a, b = (int(x) for x in rng.integers(2, 20, size=2))
        kind = index % 4
        if kind == 0:
            rows.append(_chat(f"What is {a} + {b}?", str(a + b)))
        elif kind == 1:
            rows.append(_chat(f"What is {a} times {b}?", str(a * b)))
        elif kind == 2:
            rows.append(
                _chat(f"How many letters are in the word {words[index]}?", str(len(words[index])))
            )
        else:
            rows.append(
                _chat(f"Is {a} larger than {b}? Answer yes or no.", "yes" if a > b else "no")
            )
    return rows


def write_secret_code_skill(
    directory: Path, n_train: int = 200, n_heldout: int = 50, seed: int = 0, n_contrast: int = 0
) -> tuple[Path, Path]:
    """Write `train.jsonl` (n_train skill rows shuffled with n_contrast contrast rows) and
    `heldout.jsonl` (skill rows only: it is the product eval) under `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    train, heldout = secret_code_rows(n_train, n_heldout, seed)
    train = train + contrast_rows(n_contrast, seed)
    order = np.random.default_rng(seed).permutation(len(train)) if n_contrast else range(len(train))
    paths = directory / "train.jsonl", directory / "heldout.jsonl"
    for path, rows in zip(paths, ([train[i] for i in order], heldout), strict=True):
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return paths
