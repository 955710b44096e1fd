"""On the real embedded SmolLM2: ~20 SFT steps teach a copy-style skill through TorchBackend.

"What is the secret code for X?" -> "X-X-7". Before training the model answers in prose; after
20 steps (batch 8) held-out loss has dropped and greedy answers on unseen words follow the rule.
"""

from __future__ import annotations

import numpy as np
import pytest

from tinker_chief.engine.backend import (
    AdamStep,
    DatumArrays,
    LoraSettings,
    SampleRequest,
    SamplingSettings,
)
from tinker_chief.models import DEFAULT_MODEL, load_tokenizer

WORDS = (
    "apple river stone music garden silver window forest candle rocket pencil tiger orange planet "
    "bridge castle dragon mirror summer winter pepper butter carpet doctor engine finger "
    "guitar hammer island jacket kitten ladder magnet needle office palace rabbit "
    "ticket violin basket"
).split()
TRAIN, HELD_OUT = WORDS[:32], WORDS[32:]


def prompt_tokens(tokenizer, word: str) -> list[int]:
    # a short system prompt replaces SmolLM2's default one: half the tokens, same skill
    messages = [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": f"What is the secret code for {word}?"},
    ]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return tokenizer(text, add_special_tokens=False).input_ids


def answer(word: str) -> str:
    return f"{word}-{word}-7"


def sft_datum(tokenizer, word: str) -> DatumArrays:
    prompt = prompt_tokens(tokenizer, word)
    completion = tokenizer(answer(word) + "<|im_end|>", add_special_tokens=False).input_ids
    tokens = np.array(prompt + completion, dtype=np.int64)
    weights = np.array([0.0] * (len(prompt) - 1) + [1.0] * len(completion), dtype=np.float32)
    return DatumArrays(tokens[:-1], {"target_tokens": tokens[1:], "weights": weights})


def greedy_answers(backend, sampler: str, tokenizer, words) -> list[str]:
    settings = SamplingSettings(
        max_tokens=12, temperature=0.0, stop_tokens=(tokenizer.eos_token_id,)
    )
    results = backend.sample(
        [SampleRequest(sampler, tuple(prompt_tokens(tokenizer, w)), 1, settings) for w in words]
    )
    return [
        tokenizer.decode(r.sequences[0].tokens, skip_special_tokens=True).strip() for r in results
    ]


@pytest.mark.slow
def test_twenty_sft_steps_teach_the_copy_skill():
    from tinker_chief.engine.compute import TorchBackend

    backend = TorchBackend()
    tokenizer = load_tokenizer(DEFAULT_MODEL)
    backend.create_training_model("smol", DEFAULT_MODEL, LoraSettings(rank=16, seed=0))
    held_out = [sft_datum(tokenizer, w) for w in HELD_OUT]

    def held_out_loss() -> float:
        result = backend.forward_backward("smol", held_out, "cross_entropy", {}, forward_only=True)
        return result.metrics["loss:sum"] / sum(
            float(d.loss_fn_inputs["weights"].sum()) for d in held_out
        )

    loss_before = held_out_loss()
    before = greedy_answers(backend, DEFAULT_MODEL, tokenizer, HELD_OUT)
    rng = np.random.default_rng(0)
    for _ in range(20):
        batch = [sft_datum(tokenizer, w) for w in rng.choice(TRAIN, size=8, replace=False)]
        tokens = sum(float(d.loss_fn_inputs["weights"].sum()) for d in batch)
        for d in batch:  # mean over completion tokens, as cookbook SFT does
            d.loss_fn_inputs["weights"] = d.loss_fn_inputs["weights"] / tokens
        backend.forward_backward("smol", batch, "cross_entropy", {}, forward_only=False)
        backend.optim_step("smol", AdamStep(learning_rate=1e-3, grad_clip_norm=1.0))
    loss_after = held_out_loss()
    after = greedy_answers(backend, backend.snapshot_for_sampling("smol"), tokenizer, HELD_OUT)

    expected = [answer(w) for w in HELD_OUT]
    assert sum(a == e for a, e in zip(before, expected)) == 0, before
    assert loss_after < 0.5 * loss_before, (loss_before, loss_after)
    assert sum(a == e for a, e in zip(after, expected)) >= len(HELD_OUT) // 2, after
