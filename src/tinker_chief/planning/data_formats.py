"""Readers for the four training-data formats, returning typed records.

Formats (one JSON object per line, read through `tinker_chief.jsonl` so every error names the
file, line and field):

- conversations `{"messages": [{"role", "content"}, ...]}` (the cookbook's format),
- prompt/answer `{"input", "output"}` with an optional `"system"` (the offline-eval shape),
- preferences `{"prompt", "chosen", "rejected"}`, each a string or a message list (DPO),
- RL prompts `{"prompt", "answer"}` for verifiable rewards.

Training imports these readers; the planner uses them to count tokens. Messages are plain
dicts (`ChatMessage`) because that is what cookbook renderers take.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypedDict

from tinker_chief.errors import DataError
from tinker_chief.jsonl import (
    CHAT_ROLES,
    JsonlLine,
    parse_messages,
    read_jsonl_objects,
    require_str,
)

DataFormat = Literal["conversations", "prompt_answer", "preferences", "rl_prompts"]
ROLES = CHAT_ROLES


class ChatMessage(TypedDict, total=False):
    """A cookbook `Message` restricted to what chief accepts: string content."""

    role: str
    content: str
    trainable: bool


@dataclass(frozen=True)
class Conversation:
    messages: list[ChatMessage]
    source: str  # "file:line", for errors raised later (rendering, truncation)


@dataclass(frozen=True)
class PromptAnswer:
    input: str
    output: str
    system: str | None
    source: str

    def to_conversation(self) -> Conversation:
        messages: list[ChatMessage] = (
            [{"role": "system", "content": self.system}] if self.system else []
        )
        messages += [
            {"role": "user", "content": self.input},
            {"role": "assistant", "content": self.output},
        ]
        return Conversation(messages, self.source)


@dataclass(frozen=True)
class Preference:
    prompt: list[ChatMessage]
    chosen: list[ChatMessage]
    rejected: list[ChatMessage]
    source: str

    def chosen_conversation(self) -> Conversation:
        return Conversation(self.prompt + self.chosen, self.source)

    def rejected_conversation(self) -> Conversation:
        return Conversation(self.prompt + self.rejected, self.source)


@dataclass(frozen=True)
class RLPrompt:
    prompt: str
    answer: str
    source: str

    def to_messages(self) -> list[ChatMessage]:
        return [{"role": "user", "content": self.prompt}]


Record = Conversation | PromptAnswer | Preference | RLPrompt

# The key that identifies each format, checked in order (the others' missing keys are then
# reported by the format's parser, naming the field).
_SIGNATURES: list[tuple[DataFormat, tuple[str, ...]]] = [
    ("conversations", ("messages",)),
    ("preferences", ("chosen", "rejected")),
    ("prompt_answer", ("input", "output")),
    ("rl_prompts", ("prompt", "answer")),
]
_EXPECTED_SHAPES = (
    '{"messages": [...]}, {"input", "output"}, {"prompt", "chosen", "rejected"} '
    'or {"prompt", "answer"}'
)


def _where(line: JsonlLine) -> str:
    return f"{line.path}:{line.line_number}"


def _messages(line: JsonlLine, field: str, need_assistant: str | None = None) -> list[ChatMessage]:
    # The shared validator returns plain dicts of exactly ChatMessage's keys.
    return parse_messages(line, field, roles=ROLES, need_assistant=need_assistant)  # type: ignore[return-value]


def _turns(line: JsonlLine, field: str, role: str) -> list[ChatMessage]:
    """A preference side: a plain string (one `role` message) or a message list."""
    if field not in line.value:
        raise line.error(field, "a string or a list of messages (the key is missing)")
    raw = line.value[field]
    if isinstance(raw, str):
        if not raw.strip():
            raise line.error(field, "a non-empty string", raw)
        return [{"role": role, "content": raw}]
    return _messages(line, field)


def parse_conversation(line: JsonlLine) -> Conversation:
    return Conversation(
        _messages(line, "messages", need_assistant="nothing to train on"), _where(line)
    )


def parse_prompt_answer(line: JsonlLine) -> PromptAnswer:
    system = line.value.get("system")
    if system is not None and not isinstance(system, str):
        raise line.error("system", "a string", system)
    return PromptAnswer(
        require_str(line, "input"), require_str(line, "output"), system or None, _where(line)
    )


def parse_preference(line: JsonlLine) -> Preference:
    prompt = _turns(line, "prompt", "user")
    chosen, rejected = _turns(line, "chosen", "assistant"), _turns(line, "rejected", "assistant")
    for field, side in (("chosen", chosen), ("rejected", rejected)):
        if side[-1]["role"] != "assistant":
            raise line.error(field, "to end with an assistant message")
    return Preference(prompt, chosen, rejected, _where(line))


def parse_rl_prompt(line: JsonlLine) -> RLPrompt:
    return RLPrompt(require_str(line, "prompt"), require_str(line, "answer"), _where(line))


_PARSERS: dict[DataFormat, Callable[[JsonlLine], Record]] = {
    "conversations": parse_conversation,
    "prompt_answer": parse_prompt_answer,
    "preferences": parse_preference,
    "rl_prompts": parse_rl_prompt,
}


def format_of_line(line: JsonlLine) -> DataFormat:
    """Which format a line is in, from its keys."""
    for name, keys in _SIGNATURES:
        if any(key in line.value for key in keys):
            return name
    raise line.error(
        None, f"one of the formats {_EXPECTED_SHAPES}; found keys {sorted(line.value)}"
    )


def read_records(
    path: str | Path, expected: DataFormat | Iterable[DataFormat] | None = None
) -> list[Record]:
    """Read every line of `path`; all lines must share one format (the first line's, or
    `expected`)."""
    allowed = {expected} if isinstance(expected, str) else set(expected) if expected else None
    records: list[Record] = []
    file_format: DataFormat | None = None
    for line in read_jsonl_objects(path):
        line_format = format_of_line(line)
        if file_format is None:
            file_format = line_format
            if allowed is not None and line_format not in allowed:
                expected_formats = " or ".join(sorted(allowed))
                raise line.error(
                    None,
                    f"{expected_formats} data, found {line_format} keys {sorted(line.value)}",
                )
        elif line_format != file_format:
            raise line.error(
                None,
                f"{file_format} like the first line, found {line_format} keys {sorted(line.value)}",
            )
        records.append(_PARSERS[line_format](line))
    return records


def detect_format(path: str | Path) -> DataFormat:
    """The format of a file, judged by its first line."""
    for line in read_jsonl_objects(path):
        return format_of_line(line)
    raise DataError(f"{path}: file is empty, expected one JSON object per line")


def read_conversations(path: str | Path) -> list[Conversation]:
    return [r for r in read_records(path, "conversations") if isinstance(r, Conversation)]


def read_prompt_answers(path: str | Path) -> list[PromptAnswer]:
    return [r for r in read_records(path, "prompt_answer") if isinstance(r, PromptAnswer)]


def read_preferences(path: str | Path) -> list[Preference]:
    return [r for r in read_records(path, "preferences") if isinstance(r, Preference)]


def read_rl_prompts(path: str | Path) -> list[RLPrompt]:
    return [r for r in read_records(path, "rl_prompts") if isinstance(r, RLPrompt)]


def read_sft_conversations(path: str | Path) -> list[Conversation]:
    """Supervised data as conversations: conversation files as-is, prompt/answer lines converted."""
    records = read_records(path, ("conversations", "prompt_answer"))
    return [
        r.to_conversation() if isinstance(r, PromptAnswer) else r
        for r in records
        if isinstance(r, (PromptAnswer, Conversation))
    ]


def as_conversations(records: list[Record]) -> list[Conversation]:
    """The conversations a planner renders for any format (preferences: the chosen side; RL: the
    prompt)."""
    out: list[Conversation] = []
    for record in records:
        if isinstance(record, Conversation):
            out.append(record)
        elif isinstance(record, PromptAnswer):
            out.append(record.to_conversation())
        elif isinstance(record, Preference):
            out.append(record.chosen_conversation())
        else:
            out.append(Conversation(record.to_messages(), record.source))
    return out


def format_of_record(record: Record) -> DataFormat:
    kinds: dict[type, DataFormat] = {
        Conversation: "conversations",
        PromptAnswer: "prompt_answer",
        Preference: "preferences",
        RLPrompt: "rl_prompts",
    }
    return kinds[type(record)]


# Which formats each recipe trains on.
RECIPE_FORMATS: dict[str, tuple[DataFormat, ...]] = {
    "sl": ("conversations", "prompt_answer"),
    "distill": ("conversations", "prompt_answer", "rl_prompts"),
    "dpo": ("preferences",),
    "rl": ("rl_prompts",),
}
