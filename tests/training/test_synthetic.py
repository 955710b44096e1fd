"""The demo's synthetic skill data: the rule, the contrast rows mixed into training only."""

from __future__ import annotations

import json

from tinker_chief.training.synthetic import (
    QUESTION,
    contrast_rows,
    secret_code,
    write_secret_code_skill,
)


def _rows(path):
    return [json.loads(line)["messages"] for line in path.read_text().splitlines()]


def test_contrast_rows_have_computed_answers_and_never_ask_for_a_code():
    rows = contrast_rows(40, seed=3)
    assert len(rows) == 40 and rows == contrast_rows(40, seed=3)
    for user, assistant in (r["messages"] for r in rows):
        question, answer = user["content"], assistant["content"]
        assert "secret code" not in question
        if question.startswith("What is") and "+" in question:
            a, b = (
                int(x) for x in question.removeprefix("What is ").removesuffix("?").split(" + ")
            )
            assert answer == str(a + b)
        elif " times " in question:
            a, b = (
                int(x) for x in question.removeprefix("What is ").removesuffix("?").split(" times ")
            )
            assert answer == str(a * b)
        elif question.startswith("How many letters"):
            assert answer == str(len(question.removesuffix("?").split()[-1]))
        else:
            a, b = (
                int(x) for x in question.removeprefix("Is ").split("?")[0].split(" larger than ")
            )
            assert answer == ("yes" if a > b else "no")


def test_contrast_rows_go_to_training_only(tmp_path):
    train, heldout = write_secret_code_skill(
        tmp_path, n_train=30, n_heldout=10, seed=0, n_contrast=12
    )
    train_rows, heldout_rows = _rows(train), _rows(heldout)
    codes = [r for r in train_rows if r[0]["content"].startswith(QUESTION.split("{")[0])]
    assert len(train_rows) == 42 and len(codes) == 30
    assert all(
        r[1]["content"] == secret_code(r[0]["content"].split()[-1].rstrip("?")) for r in codes
    )
    assert len(heldout_rows) == 10
    assert all(r[0]["content"].startswith("What is the secret code for") for r in heldout_rows)
    assert train_rows[:30] != codes  # shuffled in, not appended
