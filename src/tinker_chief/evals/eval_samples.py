"""Eval samples read from user JSONL: `{"input", "output"}`, optionally `messages`, `system`, `id`.

`input` is the user turn (or `messages` a full chat prefix, whose last turn must be the
user's), `output` the target the grader compares against, `system` an optional system prompt,
`id` a stable sample id (defaults to the line number) used for resume and paired comparison.
Errors name the file, line and field (via `tinker_chief.jsonl`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tinker_chief.errors import DataError
from tinker_chief.jsonl import JsonlLine, parse_messages, read_jsonl_objects, require_str

_ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class EvalSample:
    """One graded prompt. `messages` is the chat to render (system first when given)."""

    id: str
    messages: list[dict[str, str]]
    target: str
    metadata: dict[str, object] = field(default_factory=dict)

    @property
    def question(self) -> str:
        """The last user turn, what a judge sees as the task."""
        return next(m["content"] for m in reversed(self.messages) if m["role"] == "user")


def _missing(value: object) -> str:
    return " (the key is missing)" if value is None else ""


def _messages_of(line: JsonlLine) -> list[dict[str, str]]:
    if line.value.get("messages") is None:
        return [{"role": "user", "content": require_str(line, "input")}]
    messages = read_messages(line)
    if messages[-1]["role"] != "user":
        raise line.error(
            "messages", "the last message to be the user's turn (the target is the answer)"
        )
    return messages


def read_messages(line: JsonlLine) -> list[dict[str, str]]:
    """The line's `messages` list, each a {role, content} with a role chat evals render."""
    return parse_messages(line, "messages", roles=_ROLES)


def load_conversations(path: str | Path, limit: int | None = None) -> list[list[dict[str, str]]]:
    """Held-out chats for NLL: `{"messages": [...]}` lines, or `{"input", "output"}` lines read as
    a user turn answered by `output` (the planner points NLL at either kind of validation file).
    Each conversation needs an assistant turn: NLL is measured on its tokens."""
    conversations = []
    for line in read_jsonl_objects(path):
        if line.value.get("messages") is None and "input" in line.value:
            sample = sample_from_line(line)
            conversations.append(
                [*sample.messages, {"role": "assistant", "content": sample.target}]
            )
        else:
            conversations.append(
                parse_messages(
                    line, "messages", roles=_ROLES, need_assistant="the tokens NLL is measured on"
                )
            )
        if limit and len(conversations) >= limit:
            break
    return conversations


def sample_from_line(line: JsonlLine) -> EvalSample:
    messages = _messages_of(line)
    system = line.value.get("system")
    if system is not None:
        if not isinstance(system, str):
            raise line.error("system", "a string", system)
        messages = [{"role": "system", "content": system}, *messages]
    target = line.value.get("output", line.value.get("target"))
    if not isinstance(target, str):
        if isinstance(target, (int, float)) and not isinstance(target, bool):
            target = str(target)
        else:
            raise line.error("output", f"a string, the expected answer{_missing(target)}", target)
    raw_id = line.value.get("id", str(line.line_number))
    if not isinstance(raw_id, (str, int)):
        raise line.error("id", "a string or integer", raw_id)
    metadata = line.value.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise line.error("metadata", "an object", metadata)
    return EvalSample(id=str(raw_id), messages=messages, target=target, metadata=metadata)


def load_samples(path: str | Path, limit: int | None = None) -> list[EvalSample]:
    """Read and validate every line (all errors surface before any model call)."""
    samples: list[EvalSample] = []
    seen: dict[str, int] = {}
    for line in read_jsonl_objects(path):
        sample = sample_from_line(line)
        if sample.id in seen:
            raise DataError(
                f'{path}:{line.line_number}: field "id": duplicate id {sample.id!r} '
                f"(first on line {seen[sample.id]})"
            )
        seen[sample.id] = line.line_number
        samples.append(sample)
    return samples[:limit] if limit else samples
