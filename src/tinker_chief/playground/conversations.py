"""Saving a chat as an eval row in the project's JSONL format, to grow an eval set.

A conversation whose last turn is an answer becomes one row that `chief eval` and
`chief eval-offline` read (`evals.eval_samples`): `{"input", "output"}` (with `"system"`) for one
question, `{"messages": [...], "output"}` for a longer chat; `output` is the last answer, which
the user may have edited into the right one before saving. `metadata` says it came from the
playground and which model answered. The id hashes the row, so saving it twice adds nothing.
Rows go to the playground's own file or to one of the suite's jsonl task files (then the
suite's next `chief eval` includes them); nowhere else.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from tinker_chief.errors import ConfigurationError
from tinker_chief.evals.eval_samples import sample_from_line
from tinker_chief.jsonl import JsonlLine, read_jsonl_objects
from tinker_chief.playground.context import SAVED_FILE, PlaygroundContext


def conversation_row(system: str, messages: list[dict[str, str]], model: str) -> dict[str, object]:
    """The eval row of a chat ending in an assistant turn (see the module docstring)."""
    if not messages or messages[-1]["role"] != "assistant":
        raise ConfigurationError(
            "a saved conversation must end with an answer (the row's `output`)"
        )
    prompt, output = messages[:-1], messages[-1]["content"]
    if not prompt or prompt[-1]["role"] != "user":
        raise ConfigurationError(
            "the answer being saved must follow a user turn (the row's question)"
        )
    if len(prompt) == 1:
        row: dict[str, object] = {"input": prompt[0]["content"], "output": output}
        if system:
            row["system"] = system
    else:
        chat = [{"role": "system", "content": system}, *prompt] if system else prompt
        row = {
            "messages": [{"role": m["role"], "content": m["content"]} for m in chat],
            "output": output,
        }
    digest = hashlib.sha256(json.dumps(row, sort_keys=True).encode()).hexdigest()[:12]
    return {
        "id": f"playground-{digest}",
        **row,
        "metadata": {"source": "chief playground", "model": model},
    }


def _target_path(context: PlaygroundContext, target: str | None) -> tuple[str, Path]:
    allowed = context.save_targets()
    chosen = target or allowed[0]
    if chosen not in allowed:
        raise ConfigurationError(f"cannot save to {chosen!r}: expected one of {', '.join(allowed)}")
    return chosen, context.root / chosen


def save_conversation(
    context: PlaygroundContext,
    target: str | None,
    system: str,
    messages: list[dict[str, str]],
    model: str,
) -> dict[str, object]:
    """Append the chat's row to `target` (one of `context.save_targets()`); `saved` is False
    when the same row is already there."""
    relative, path = _target_path(context, target)
    row = conversation_row(system, messages, model)
    sample_from_line(JsonlLine(path, 0, row))  # reads back as an eval sample, or says why not
    exists = path.is_file() and path.stat().st_size > 0
    if exists and any(
        line.value.get("id") == row["id"] for line in read_jsonl_objects(path, allow_empty=True)
    ):
        return {"path": relative, "id": row["id"], "row": row, "saved": False}
    text = json.dumps(row, ensure_ascii=False) + "\n"
    if exists and not _ends_with_newline(path):
        text = "\n" + text  # a last line without its newline stays whole
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(text)
    return {"path": relative, "id": row["id"], "row": row, "saved": True}


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as handle:
        handle.seek(-1, 2)
        return handle.read(1) == b"\n"


def saved_conversations(context: PlaygroundContext) -> list[dict[str, object]]:
    """The rows of the playground's own file, in order (none when it does not exist yet)."""
    path = context.root / SAVED_FILE
    if not path.is_file():
        return []
    return [line.value for line in read_jsonl_objects(path, allow_empty=True)]
