"""Counting total and completion (trained) tokens of conversations with the model's renderer.

The reference is the cookbook: `renderer.build_supervised_example(messages, train_on_what)`
gives the rendered tokens and per-token weights; trained tokens are the weight-1 positions,
and truncation keeps the first `max_length` tokens (`datum_from_model_input_weights`), of which
the first is never a target.

That path renders one message at a time in Python (~1 ms per conversation), far slower than
the fast tokenizer. For ChatML (`Qwen3InstructRenderer`, our `chatml`) the render is a pure
concatenation: per message a header `"\\n"? + "<|im_start|>{role}\\n"` (untrained except for
`all_tokens`), the content tokenized on its own with `split_special_tokens=True`, then
`<|im_end|>`. So `fast_chatml_counts` batch-tokenizes all contents in one call and adds the
framing lengths itself, mirroring the renderer's weight rules (`_output_is_trained` and
`_train_after_the_generation_prompt`, which zeroes nothing for ChatML since its prompt is a
prefix of the render). tests/planning prove it equal to the renderer; any other renderer takes
the reference path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tinker_chief.models.renderers import cookbook_messages
from tinker_chief.planning.data_formats import ChatMessage, Conversation

if TYPE_CHECKING:
    from tinker_cookbook.renderers import Renderer
    from tinker_cookbook.tokenizer_utils import Tokenizer

_CHUNK = 8192  # texts per tokenizer call: bounds memory on large files without slowing the batch


@dataclass(frozen=True)
class TokenCounts:
    """Per-example counts, in input order."""

    total: list[int]  # rendered length before truncation
    completion: list[int]  # trained tokens before truncation
    completion_kept: list[int]  # trained target tokens within the first max_length tokens
    method: str  # "renderer" or "batched-chatml"


def _is_trained(
    message: ChatMessage, idx: int, n: int, turn_start: int, train_on_what: str
) -> bool:
    """The cookbook's `Renderer._output_is_trained`, for plain string messages."""
    role = message["role"]
    is_assistant = role == "assistant"
    if train_on_what == "last_assistant_message":
        return idx == n - 1 and is_assistant
    if train_on_what == "last_assistant_turn":
        return is_assistant and idx >= turn_start
    if train_on_what == "all_assistant_messages":
        return is_assistant
    if train_on_what in ("all_messages", "all_tokens"):
        return True
    if train_on_what == "all_user_and_system_messages":
        return role in ("user", "system")
    if train_on_what == "customized":
        return bool(message.get("trainable", False))
    raise ValueError(f"unknown train_on_what {train_on_what!r}")


def _turn_start(messages: Sequence[ChatMessage]) -> int:
    users = [i for i, m in enumerate(messages[:-1]) if m["role"] == "user"]
    return (users[-1] if users else -1) + 1


def _kept(segments: list[tuple[int, int]], max_length: int) -> int:
    """Trained tokens among target positions 1..max_length-1 of the concatenated segments."""
    kept, position = 0, 0
    for length, weight in segments:
        start, end = max(position, 1), min(position + length, max_length)
        if weight and end > start:
            kept += end - start
        position += length
        if position >= max_length:
            break
    return kept


def supports_fast_path(renderer: Renderer) -> bool:
    from tinker_cookbook.renderers.qwen3 import Qwen3InstructRenderer

    return type(renderer) is Qwen3InstructRenderer


def _content_text(message: ChatMessage) -> str:
    if message["role"] == "tool":  # the renderer wraps tool output the way Qwen's template does
        return f"<tool_response>\n{message['content']}\n</tool_response>"
    return message["content"]


def _content_lengths(tokenizer: Tokenizer, texts: list[str]) -> list[int]:
    lengths: list[int] = []
    for start in range(0, len(texts), _CHUNK):
        encoded = tokenizer(
            texts[start : start + _CHUNK],
            add_special_tokens=False,
            split_special_tokens=True,
            return_attention_mask=False,
            return_token_type_ids=False,
        )["input_ids"]
        lengths.extend(len(ids) for ids in encoded)
    return lengths


def fast_chatml_counts(
    conversations: Sequence[Conversation], renderer: Renderer, train_on_what: str, max_length: int
) -> TokenCounts:
    tokenizer = renderer.tokenizer
    texts = [_content_text(m) for conv in conversations for m in conv.messages]
    lengths = iter(_content_lengths(tokenizer, texts))
    header_cache: dict[tuple[str, bool], int] = {}

    def header(role: str, first: bool) -> int:
        key = (role, first)
        if key not in header_cache:
            text = f"{'' if first else chr(10)}<|im_start|>{'user' if role == 'tool' else role}\n"
            header_cache[key] = len(tokenizer.encode(text, add_special_tokens=False))
        return header_cache[key]

    header_weight = int(train_on_what == "all_tokens")
    total, completion, kept = [], [], []
    for conv in conversations:
        messages, n = conv.messages, len(conv.messages)
        turn_start = _turn_start(messages)
        segments: list[tuple[int, int]] = []
        for idx, message in enumerate(messages):
            trained = int(_is_trained(message, idx, n, turn_start, train_on_what))
            segments.append((header(message["role"], idx == 0), header_weight))
            segments.append((next(lengths) + 1, trained))  # content + <|im_end|>
        length = sum(s for s, _ in segments)
        trained_tokens = sum(s for s, w in segments if w)
        total.append(length)
        completion.append(trained_tokens)
        # Position 0 is never a target (the datum is shifted by one); only all_tokens weights it.
        kept.append(
            trained_tokens - header_weight if length <= max_length else _kept(segments, max_length)
        )
    return TokenCounts(total, completion, kept, "batched-chatml")


def renderer_counts(
    conversations: Sequence[Conversation], renderer: Renderer, train_on_what: str, max_length: int
) -> TokenCounts:
    """The reference: the cookbook renderer, one conversation at a time."""
    from tinker_cookbook.renderers import TrainOnWhat

    mode = TrainOnWhat(train_on_what)
    total, completion, kept = [], [], []
    for conv in conversations:
        chat = cookbook_messages(conv.messages)
        model_input, weights = renderer.build_supervised_example(chat, train_on_what=mode)
        trained = weights > 0
        total.append(model_input.length)
        completion.append(int(trained.sum()))
        kept.append(int(trained[1:max_length].sum()))
    return TokenCounts(total, completion, kept, "renderer")


def count_tokens(
    conversations: Sequence[Conversation],
    renderer: Renderer,
    train_on_what: str,
    max_length: int,
    *,
    method: str = "auto",
) -> TokenCounts:
    """Counts for every conversation; `method` is auto, renderer or batched-chatml."""
    fast = method == "batched-chatml" or (method == "auto" and supports_fast_path(renderer))
    if fast:
        if not supports_fast_path(renderer):
            raise ValueError("the batched counter only handles the ChatML renderer")
        return fast_chatml_counts(conversations, renderer, train_on_what, max_length)
    return renderer_counts(conversations, renderer, train_on_what, max_length)


# The proxy for a cloud model whose tokenizer is not on this machine: the embedded SmolLM2
# tokenizer (49k BPE) with ChatML framing. Its error bound was measured here against the other
# real tokenizer shipped in installed packages, o200k_base (gpt-oss's, 200k vocab, in
# tml_renderers/data): on README + docs, PRODUCT.md, chief's sources and its bundled eval
# JSONL, o200k_base counted 0.838 to 0.929 of the proxy's tokens (largest gap 16.2%). Llama-3
# (128k) and Qwen3 (151k) vocabularies sit between the two, so the bound is that gap rounded up.
PROXY_TOKENIZER_MODEL = "SmolLM2-135M-Instruct-Q4_1"
PROXY_RENDERER = "chatml"
PROXY_ERROR_BOUND = 0.20
PROXY_BOUND_RULE = (
    "measured: o200k_base (gpt-oss's tokenizer) counted 0.84-0.93x the proxy's tokens on English "
    "prose, code and chat data; bound = that 16.2% gap rounded up to 20%, both directions. "
    "Non-English text may differ more."
)
