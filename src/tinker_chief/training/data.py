"""Training data per recipe: the planner's typed records turned into `tinker.Datum`s.

Reading and validating the JSONL is `tinker_chief.planning.data_formats`'s job (every bad line is
reported as `file:line: field "x": expected ...` before training starts); this module only
renders. Chat examples become datums with the cookbook's `conversation_to_datum` (its
renderer decides which tokens are trained; `models.conversation_datum`, which evals share), so
what we train is what the cookbook's own SFT and DPO recipes would train. `Prepared` holds one
spec's rendered data, as `training.session.prepare` returns it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import tinker

from tinker_chief.errors import DataError
from tinker_chief.models import conversation_datum
from tinker_chief.planning import data_formats as records
from tinker_chief.training.spec import TrainSpec

if TYPE_CHECKING:
    from tinker_cookbook.renderers import Renderer

# A prompt's chat turn, `{"role", "content"}`: what samplers and graders are given.
Message = dict[str, str]
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


def prompt_messages(messages: Sequence[records.ChatMessage]) -> list[Message]:
    """A chat's turns as a prompt: role and content (`trainable` marks are for training only)."""
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def read_problems(path: Path) -> list[Problem]:
    return [
        Problem(prompt_messages(r.to_messages()), r.answer) for r in records.read_rl_prompts(path)
    ]


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
    """Held-out chats as (everything before the final reply, the final reply), for sampled
    accuracy."""
    out = []
    for conversation in conversations:
        messages = list(conversation.messages)
        if len(messages) >= 2 and messages[-1].get("role") == "assistant":
            out.append(Problem(prompt_messages(messages[:-1]), messages[-1]["content"]))
    return out


def _datum(
    messages: Sequence[Mapping[str, object]],
    renderer: Renderer,
    max_length: int | None,
    train_on_what: str,
    source: str,
    reduction: Reduction = "mean",
) -> tinker.Datum:
    datum = conversation_datum(messages, renderer, max_length, train_on_what, reduction)
    if not any(w > 0 for w in datum.loss_fn_inputs["weights"].data):
        raise DataError(
            f"{source}: no trained tokens left after truncating to max_length={max_length}; "
            "raise data.max_length or shorten the example"
        )
    return datum


def conversations_to_data(
    conversations: list[records.Conversation],
    renderer: Renderer,
    max_length: int | None,
    train_on_what: str,
    drop_long: bool = False,
    reduction: Reduction = "mean",
) -> list[tinker.Datum]:
    """SFT datums with the cookbook's per-example token-mean weights (`reduction="mean"`).

    Longer examples are cut at `max_length`, or skipped when `drop_long` (`truncation = "drop"`).
    Validation data uses `reduction="none"` so its NLL is per token, as `chief eval` reports it.
    """
    if not drop_long:
        return [
            _datum(
                [dict(m) for m in c.messages],
                renderer,
                max_length,
                train_on_what,
                c.source,
                reduction,
            )
            for c in conversations
        ]
    data = [
        _datum([dict(m) for m in c.messages], renderer, None, train_on_what, c.source, reduction)
        for c in conversations
    ]
    return [datum for datum in data if max_length is None or datum.model_input.length < max_length]


def preference_data(
    pairs: list[records.Preference], renderer: Renderer, max_length: int | None
) -> list[tinker.Datum]:
    """Interleaved chosen/rejected datums (even = chosen), with token-sum weights as the
    cookbook's DPO uses."""
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


@dataclass
class Prepared:
    """Validated, rendered data for one spec (no backend touched yet)."""

    spec: TrainSpec
    renderer: Renderer
    # Datums (sl, dpo), problems (rl) or input strings (distill): the recipe's accessor below.
    train_items: list[tinker.Datum] | list[Problem] | list[str]
    val_data: list[tinker.Datum] = field(default_factory=list)  # datums for validation NLL
    val_problems: list[Problem] = field(default_factory=list)
    data_hash: str = ""

    def datums(self) -> list[tinker.Datum]:
        """The training items of an `sl` or `dpo` spec."""
        return [item for item in self.train_items if isinstance(item, tinker.Datum)]

    def problems(self) -> list[Problem]:
        """The training items of an `rl` spec."""
        return [item for item in self.train_items if isinstance(item, Problem)]

    def inputs(self) -> list[str]:
        """The training items of a `distill` spec: the inputs the teacher labels."""
        return [item for item in self.train_items if isinstance(item, str)]
