"""Reading JSONL files with errors that point at the file, line and field.

Every capability that reads user data (planning's training files, evals' task files) goes
through `read_jsonl_objects`, so a bad line is always reported the same way:
`data/train.jsonl:17: field "messages": expected a list of messages, got str`.
Chat messages (`{"role", "content"}` lists, in training and eval files alike) are validated
here too (`parse_messages`), so planning and evals accept and reject the same chats. Lines are
read as bytes with a cap (`MAX_LINE_BYTES`), then decoded and parsed by `files`, so binary,
UTF-16 or endless input is a one-line error too. `jsonl_objects` reads the same lines from an
open stream (e.g. a capped gunzipping one, `files.open_capped`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from tinker_chief.errors import DataError
from tinker_chief.files import MIB, JsonObject, decode_utf8, open_binary, parse_json

ONE_PER_LINE = "expected one JSON object per line"
MAX_LINE_BYTES = 16 * MIB  # one example; far above any context window, far below a runaway read


@dataclass(frozen=True)
class JsonlLine:
    """One parsed JSON object and where it came from."""

    path: Path
    line_number: int
    value: JsonObject

    def error(self, field: str | None, expected: str, got: object = None) -> DataError:
        """Build a `DataError` for this line; `got` is summarised, never dumped whole."""
        where = f"{self.path}:{self.line_number}"
        what = f'field "{field}": ' if field else ""
        detail = f", got {_describe(got)}" if got is not None else ""
        return DataError(f"{where}: {what}expected {expected}{detail}")


def _describe(value: object) -> str:
    if isinstance(value, str):
        short = value if len(value) <= 40 else value[:37] + "..."
        return f"str {short!r}"
    return type(value).__name__


class LineReader(Protocol):
    """What JSONL lines are read from: an open binary file, or a capped gunzipping stream
    (`files.open_capped`)."""

    def readline(self, size: int = -1, /) -> bytes: ...


def read_jsonl_objects(path: str | Path, *, allow_empty: bool = False) -> Iterator[JsonlLine]:
    """Yield each non-blank line of `path` as a JSON object, or raise `DataError`."""
    path = Path(path)
    with open_binary(path) as handle:
        yield from jsonl_objects(handle, path, allow_empty=allow_empty)


def jsonl_objects(
    stream: LineReader,
    path: Path,
    *,
    allow_empty: bool = False,
) -> Iterator[JsonlLine]:
    """`read_jsonl_objects` over an already open `stream` of `path`'s bytes."""
    seen_any = False
    lines = iter(lambda: stream.readline(MAX_LINE_BYTES + 1), b"")
    for line_number, raw in enumerate(lines, start=1):
        where = f"{path}:{line_number}"
        if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
            limit = f"{MAX_LINE_BYTES // MIB} MiB"
            raise DataError(f"{where}: line longer than {limit}; {ONE_PER_LINE}")
        text = decode_utf8(raw, path, line_number)
        if not text.strip():
            continue
        value = parse_json(text, path, line_number)
        if not isinstance(value, dict):
            raise DataError(f"{where}: expected a JSON object, got {type(value).__name__}")
        seen_any = True
        yield JsonlLine(path, line_number, value)
    if not seen_any and not allow_empty:
        raise DataError(f"{path}: file is empty, {ONE_PER_LINE}")


def require_str(line: JsonlLine, field: str, *, allow_empty: bool = False) -> str:
    """Return `line.value[field]` as a string, or raise a precise `DataError`."""
    if field not in line.value:
        raise line.error(field, "a string (the key is missing)")
    value = line.value[field]
    if not isinstance(value, str):
        raise line.error(field, "a string", value)
    if not allow_empty and not value.strip():
        raise line.error(field, "a non-empty string", value)
    return value


CHAT_ROLES = ("system", "user", "assistant", "tool")


def parse_message(
    line: JsonlLine, field: str, raw: object, roles: tuple[str, ...] = CHAT_ROLES
) -> dict[str, str | bool]:
    """One `{"role", "content"[, "trainable"]}` message; an assistant reply must not be blank."""
    if not isinstance(raw, dict):
        raise line.error(field, 'an object {"role": ..., "content": ...}', raw)
    role = raw.get("role")
    if role is None:
        raise line.error(f"{field}.role", f"one of {', '.join(roles)} (the key is missing)")
    if role not in roles:
        raise line.error(f"{field}.role", f"one of {', '.join(roles)}", role)
    if "content" not in raw:
        raise line.error(f"{field}.content", "a string (the key is missing)")
    content = raw["content"]
    if not isinstance(content, str):
        raise line.error(f"{field}.content", "a string", content)
    if role == "assistant" and not content.strip():
        raise line.error(
            f"{field}.content",
            "a non-empty assistant reply (empty assistant turns carry no tokens)",
            content,
        )
    message: dict[str, str | bool] = {"role": role, "content": content}
    if "trainable" in raw:
        if not isinstance(raw["trainable"], bool):
            raise line.error(f"{field}.trainable", "true or false", raw["trainable"])
        message["trainable"] = raw["trainable"]
    return message


def parse_messages(
    line: JsonlLine,
    field: str,
    *,
    roles: tuple[str, ...] = CHAT_ROLES,
    need_assistant: str | None = None,
) -> list[dict[str, Any]]:
    """`line.value[field]` as a non-empty list of messages.

    `need_assistant`, when given, requires an assistant message and says why in the error.
    Loosely typed: planning takes the messages as its `ChatMessage`s, evals as string pairs.
    """
    if field not in line.value:
        raise line.error(field, "a list of messages (the key is missing)")
    raw = line.value[field]
    if not isinstance(raw, list):
        raise line.error(field, "a list of messages", raw)
    if not raw:
        raise line.error(field, "a non-empty list of messages")
    messages = [
        parse_message(line, f"{field}[{index}]", item, roles) for index, item in enumerate(raw)
    ]
    if need_assistant and not any(m["role"] == "assistant" for m in messages):
        raise line.error(field, f"at least one assistant message ({need_assistant})")
    return messages
