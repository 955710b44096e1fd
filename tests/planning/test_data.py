"""Data readers: every format parses to typed records; every bad input names file, line and
field."""

from __future__ import annotations

import pytest

from tinker_chief.errors import DataError
from tinker_chief.planning.data_formats import (
    Conversation,
    Preference,
    PromptAnswer,
    RLPrompt,
    detect_format,
    read_preferences,
    read_records,
    read_rl_prompts,
    read_sft_conversations,
)

from .conftest import chat
from jsonl_support import write_jsonl


def test_conversations_parse(tmp_path):
    path = write_jsonl(tmp_path / "c.jsonl", [chat("hi", "hello", system="be brief")])
    [record] = read_records(path)
    assert isinstance(record, Conversation)
    assert [m["role"] for m in record.messages] == ["system", "user", "assistant"]
    assert record.source == f"{path}:1"
    assert detect_format(path) == "conversations"


def test_prompt_answer_becomes_conversation(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [{"input": "2+2?", "output": "4", "system": "math"}])
    [record] = read_records(path)
    assert record == PromptAnswer("2+2?", "4", "math", f"{path}:1")
    [conv] = read_sft_conversations(path)
    assert conv.messages == [
        {"role": "system", "content": "math"},
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "4"},
    ]


def test_preferences_strings_and_message_lists(tmp_path):
    path = write_jsonl(
        tmp_path / "d.jsonl",
        [
            {"prompt": "Say hi", "chosen": "Hi!", "rejected": "No."},
            {
                "prompt": [{"role": "user", "content": "Say hi"}],
                "chosen": [{"role": "assistant", "content": "Hi!"}],
                "rejected": [{"role": "assistant", "content": "No"}],
            },
        ],
    )
    first, second = read_preferences(path)
    assert isinstance(first, Preference)
    assert first.chosen_conversation().messages == second.chosen_conversation().messages
    assert first.rejected_conversation().messages[-1] == {"role": "assistant", "content": "No."}


def test_rl_prompts(tmp_path):
    path = write_jsonl(tmp_path / "r.jsonl", [{"prompt": "1+1=", "answer": "2"}])
    assert read_rl_prompts(path) == [RLPrompt("1+1=", "2", f"{path}:1")]


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        (
            [
                '{"messages": [',
            ],
            r"x\.jsonl:1: invalid JSON",
        ),
        (
            [chat("a", "b"), {"messages": [{"role": "user"}]}],
            r'x\.jsonl:2: field "messages\[0\]\.content": expected a string \(the key is missing\)',
        ),
        (
            [{"messages": [{"role": "robot", "content": "x"}]}],
            r'x\.jsonl:1: field "messages\[0\]\.role": '
            r"expected one of system, user, assistant, tool, got str 'robot'",
        ),
        (
            [
                {
                    "messages": [
                        {"role": "user", "content": "q"},
                        {"role": "assistant", "content": "  "},
                    ]
                }
            ],
            r'field "messages\[1\]\.content": expected a non-empty assistant reply',
        ),
        (
            [
                {
                    "messages": [
                        {"role": "user", "content": ["part"]},
                        {"role": "assistant", "content": "a"},
                    ]
                }
            ],
            r'field "messages\[0\]\.content": expected a string, got list',
        ),
        (
            [{"messages": [{"role": "user", "content": "only a question"}]}],
            r'field "messages": expected at least one assistant message',
        ),
        ([{"messages": "hello"}], r'field "messages": expected a list of messages, got str'),
        ([{"input": "q"}], r'x\.jsonl:1: field "output": expected a string \(the key is missing\)'),
        ([{"input": "q", "output": 3}], r'field "output": expected a string, got int'),
        (
            [{"prompt": "p", "chosen": "c"}],
            r'field "rejected": expected a string or a list of messages \(the key is missing\)',
        ),
        ([{"prompt": "p"}], r'field "answer": expected a string \(the key is missing\)'),
        ([{"text": "raw"}], r"x\.jsonl:1: expected one of the formats"),
        (
            [chat("a", "b"), {"input": "q", "output": "a"}],
            r"x\.jsonl:2: expected conversations like the first line",
        ),
        (["[1, 2]"], r"x\.jsonl:1: expected a JSON object, got list"),
    ],
)
def test_bad_lines_name_file_line_and_field(tmp_path, rows, expected):
    path = write_jsonl(tmp_path / "x.jsonl", rows)
    with pytest.raises(DataError, match=expected):
        read_records(path)


def test_empty_and_missing_files(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(DataError, match=r"empty\.jsonl: file is empty"):
        read_records(empty)
    with pytest.raises(DataError, match=r"nope\.jsonl: file not found"):
        read_records(tmp_path / "nope.jsonl")


def test_wrong_format_for_task(tmp_path):
    path = write_jsonl(tmp_path / "x.jsonl", [{"prompt": "p", "answer": "a"}])
    with pytest.raises(
        DataError,
        match=r"x\.jsonl:1: expected conversations or prompt_answer data, found rl_prompts",
    ):
        read_sft_conversations(path)
