"""Training data per recipe: the planner's typed records turned into `tinker.Datum`s.

Reading and validating the JSONL is `tinker_chief.planning.data_formats`'s job (every bad line is
reported as `file:line: field "x": expected ...` before training starts); this module only
renders. Chat examples become datums with the cookbook's `conversation_to_datum` (its
renderer decides which tokens are trained; `models.conversation_datum`, which evals share), so
what we train is what the cookbook's own SFT and DPO recipes would train.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tinker_chief.errors import DataError
from tinker_chief.models import conversation_datum
from tinker_chief.planning import data_formats as records

Message = dict[str, Any]
Reduction = Literal["none", "mean"]


@dataclass(frozen=True)
class Problem:
    """A prompt with a verifiable answer (RL rewards, sampled-accuracy evals)."""

    prompt: list[Message]
    answer: str


def user_turn(text: str, system: str | None = None) -> list[Message]:
    messages: list[Message] = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": text})
    return messages


def read_sft(path: Path) -> list[records.Conversation]:
    return records.read_sft_conversations(path)


def read_problems(path: Path) -> list[Problem]:
    return [Problem([dict(m) for m in r.to_messages()], r.answer) for r in records.read_rl_prompts(path)]


def read_preferences(path: Path) -> list[records.Preference]:
    return records.read_preferences(path)


def read_distill_inputs(path: Path) -> list[str]:
    """Prompt-distillation inputs: the first user turn of each record, in any supported format."""
    inputs = []
    for conversation in records.as_conversations(records.read_records(path)):
        users = [m["content"] for m in conversation.messages if m.get("role") == "user"]
        if not users:
            raise DataError(f"{conversation.source}: expected a user message to distil")
        inputs.append(users[0])
    return inputs


def problems_from_conversations(conversations: list[records.Conversation]) -> list[Problem]:
    """Held-out chats as (everything before the final reply, the final reply) for sampled accuracy."""
    out = []
    for conversation in conversations:
        messages = list(conversation.messages)
        if len(messages) >= 2 and messages[-1].get("role") == "assistant":
            out.append(Problem([dict(m) for m in messages[:-1]], messages[-1]["content"]))
    return out


def _datum(
    messages: list[Message],
    renderer: Any,
    max_length: int | None,
    train_on_what: str,
    source: str,
    reduction: Reduction = "mean",
) -> Any:
    datum = conversation_datum(messages, renderer, max_length, train_on_what, reduction)
    if not any(w > 0 for w in datum.loss_fn_inputs["weights"].data):
        raise DataError(
            f"{source}: no trained tokens left after truncating to max_length={max_length}; "
            "raise data.max_length or shorten the example"
        )
    return datum


def conversations_to_data(
    conversations: list[records.Conversation],
    renderer: Any,
    max_length: int | None,
    train_on_what: str,
    drop_long: bool = False,
    reduction: Reduction = "mean",
) -> list[Any]:
    """SFT datums with the cookbook's per-example token-mean weights (`reduction="mean"`).

    Longer examples are cut at `max_length`, or skipped when `drop_long` (`truncation = "drop"`).
    Validation data uses `reduction="none"` so its NLL is per token, as `chief eval` reports it.
    """
    if not drop_long:
        return [
            _datum([dict(m) for m in c.messages], renderer, max_length, train_on_what, c.source, reduction)
            for c in conversations
        ]
    data = [
        _datum([dict(m) for m in c.messages], renderer, None, train_on_what, c.source, reduction) for c in conversations
    ]
    return [datum for datum in data if max_length is None or datum.model_input.length < max_length]


def preference_data(pairs: list[records.Preference], renderer: Any, max_length: int | None) -> list[Any]:
    """Interleaved chosen/rejected datums (even = chosen), token-sum weights as the cookbook's DPO uses."""
    data = []
    for pair in pairs:
        for side in (pair.chosen_conversation(), pair.rejected_conversation()):
            data.append(
                _datum(
                    [dict(m) for m in side.messages],
                    renderer,
                    max_length,
                    "last_assistant_message",
                    side.source,
                    reduction="none",
                )
            )
    return data
