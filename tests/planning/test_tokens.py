"""Token counting: a hand-computed example, and the batched ChatML counter equal to the renderer."""

from __future__ import annotations

import random

import pytest

from tinker_chief.models import get_renderer, load_tokenizer
from tinker_chief.planning.data_formats import Conversation
from tinker_chief.planning.tokens import count_tokens, supports_fast_path

MODES = [
    "last_assistant_message",
    "last_assistant_turn",
    "all_assistant_messages",
    "all_messages",
    "all_tokens",
    "all_user_and_system_messages",
    "customized",
]


@pytest.fixture(scope="module")
def tiny_renderer():
    return get_renderer("chatml", load_tokenizer("tiny-random-llama"))


@pytest.mark.parametrize("method", ["renderer", "batched-chatml"])
def test_hand_computed_example(tiny_renderer, method):
    # tiny-random-llama's vocabulary is bytes + 3 specials, so every character is one token:
    #   "<|im_start|>user\n" = 1 + 4 + 1 = 6      "Hi" + <|im_end|> = 3
    #   "\n<|im_start|>assistant\n" = 1 + 1 + 9 + 1 = 12      "Yo!" + <|im_end|> = 4     total 25
    conv = Conversation(
        [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo!"}], "hand:1"
    )
    counts = count_tokens(
        [conv], tiny_renderer, "all_assistant_messages", max_length=4096, method=method
    )
    assert (counts.total, counts.completion, counts.completion_kept) == ([25], [4], [4])
    # Truncated at 23 tokens: the trained tokens sit at positions 21..24, so 21 and 22 stay.
    truncated = count_tokens(
        [conv], tiny_renderer, "all_assistant_messages", max_length=23, method=method
    )
    assert truncated.completion_kept == [2]
    every = count_tokens([conv], tiny_renderer, "all_tokens", max_length=4096, method=method)
    assert every.completion == [25] and every.completion_kept == [
        24
    ]  # position 0 is never a target


def _random_conversations(seed: int, n: int, customized: bool) -> list[Conversation]:
    rng = random.Random(seed)
    words = [
        "hello",
        "world",
        "<|im_end|>",
        "naïve",
        "代码",
        "  spaced ",
        "\n",
        "x = 1;",
        "ok!",
        "<think>",
    ]

    def text() -> str:
        return " ".join(rng.choices(words, k=rng.randint(1, 8)))

    out = []
    for i in range(n):
        messages = [{"role": "system", "content": text()}] if rng.random() < 0.4 else []
        for _ in range(rng.randint(1, 3)):
            messages.append({"role": "user", "content": text()})
            if rng.random() < 0.2:
                messages.append({"role": "tool", "content": text()})
            messages.append({"role": "assistant", "content": text()})
        if rng.random() < 0.2:
            messages.append({"role": "user", "content": text()})
        if customized:
            for message in messages:
                message["trainable"] = rng.random() < 0.5
        out.append(Conversation(messages, f"random:{i}"))
    return out


def _assert_equal_methods(renderer, conversations, mode, max_length):
    reference = count_tokens(conversations, renderer, mode, max_length, method="renderer")
    batched = count_tokens(conversations, renderer, mode, max_length, method="batched-chatml")
    assert batched.total == reference.total
    assert batched.completion == reference.completion
    assert batched.completion_kept == reference.completion_kept


@pytest.mark.parametrize("mode", MODES)
def test_batched_counter_equals_renderer_on_tiny(tiny_renderer, mode):
    conversations = _random_conversations(1, 120, customized=mode == "customized")
    assert supports_fast_path(tiny_renderer)
    for max_length in (30, 4096):
        _assert_equal_methods(tiny_renderer, conversations, mode, max_length)


@pytest.mark.slow
def test_batched_counter_equals_renderer_on_smollm2():
    renderer = get_renderer("chatml", load_tokenizer("SmolLM2-135M-Instruct-Q4_1"))
    for mode in MODES:
        conversations = _random_conversations(2, 150, customized=mode == "customized")
        for max_length in (20, 4096):
            _assert_equal_methods(renderer, conversations, mode, max_length)
