"""Eval JSONL reading: accepted shapes and errors naming file, line and field."""

from __future__ import annotations

import json

import pytest

from tinker_chief.errors import DataError
from tinker_chief.evals.eval_samples import load_samples


def write(tmp_path, lines):
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(json.dumps(x) if not isinstance(x, str) else x for x in lines) + "\n")
    return path


def test_shapes(tmp_path):
    path = write(
        tmp_path,
        [
            {"input": "2+2?", "output": "4"},
            {
                "messages": [
                    {"role": "user", "content": "hi"},
                    {"role": "assistant", "content": "yo"},
                    {"role": "user", "content": "Capital of France?"},
                ],
                "output": "Paris",
                "id": "fr",
            },
            {"input": "x", "output": 5, "system": "Be terse."},
        ],
    )
    samples = load_samples(path)
    assert [s.id for s in samples] == ["1", "fr", "3"]
    assert samples[1].question == "Capital of France?"
    assert (
        samples[2].messages[0] == {"role": "system", "content": "Be terse."}
        and samples[2].target == "5"
    )
    assert len(load_samples(path, limit=2)) == 2


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ({"output": "4"}, r'd.jsonl:2: field "input": expected a string \(the key is missing\)'),
        ({"input": "q"}, r'd.jsonl:2: field "output": expected a string'),
        ({"input": 3, "output": "4"}, r'd.jsonl:2: field "input": expected a string, got int'),
        (
            {"messages": [{"role": "bot", "content": "x"}], "output": "4"},
            r'field "messages\[0\].role"',
        ),
        ({"messages": [{"role": "assistant", "content": "x"}], "output": "4"}, "last message"),
        ({"input": "q", "output": "4", "id": "1"}, "duplicate id"),
        ("{not json", r"d.jsonl:2: invalid JSON"),
    ],
)
def test_errors_point_at_line_and_field(tmp_path, line, message):
    path = write(tmp_path, [{"input": "ok", "output": "ok", "id": "1"}, line])
    with pytest.raises(DataError, match=message):
        load_samples(path)


def test_nll_reads_chats_and_prompt_answer_lines(tmp_path):
    from tinker_chief.evals.eval_samples import load_conversations

    path = write(
        tmp_path,
        [
            {
                "messages": [
                    {"role": "user", "content": "hi"},
                    {"role": "assistant", "content": "yo"},
                ]
            },
            {"input": "2+2?", "output": "4", "system": "Be terse."},
        ],
    )
    assert load_conversations(path) == [
        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}],
        [
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": "2+2?"},
            {"role": "assistant", "content": "4"},
        ],
    ]
    no_answer = write(tmp_path, [{"messages": [{"role": "user", "content": "hi"}]}])
    with pytest.raises(
        DataError, match=r'd.jsonl:1: field "messages": expected at least one assistant message'
    ):
        load_conversations(no_answer)


def test_eval_and_training_readers_validate_chats_the_same_way(tmp_path):
    """One validator (tinker_chief.jsonl.parse_messages) behind both: same file, same error."""
    from tinker_chief.evals.eval_samples import load_conversations
    from tinker_chief.planning.data_formats import read_records

    bad = {
        "messages": [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": " ", "trainable": 1},
        ]
    }
    path = write(
        tmp_path,
        [
            {
                "messages": [
                    {"role": "user", "content": "hi"},
                    {"role": "assistant", "content": "yo"},
                ]
            },
            bad,
        ],
    )
    with pytest.raises(DataError) as from_evals:
        load_conversations(path)
    with pytest.raises(DataError) as from_planning:
        read_records(path)
    assert str(from_evals.value) == str(from_planning.value)
    assert 'd.jsonl:2: field "messages[1].content": expected a non-empty assistant reply' in str(
        from_evals.value
    )
