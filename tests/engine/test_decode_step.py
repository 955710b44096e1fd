"""The lean one-token decode step (`engine/compute/decode_step.py`) on each architecture it takes:
the sampler's tokens and logprobs equal transformers' forward bit for bit, and the models it
does not know are left to transformers. (The tiny Llama through the sampler, fp32 with a LoRA
adapter and bf16: tests/engine/test_compute_sampling.py and test_compute_bf16.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tinker_chief.engine.backend import SamplingSettings
from tinker_chief.engine.compute import decode_step, generation
from tinker_chief.engine.compute.base_pool import load_frozen_causal_lm
from tinker_chief.engine.compute.devices import choose_precision
from tinker_chief.engine.compute.generation import Row

SHAPE = dict(
    vocab_size=259,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    max_position_embeddings=256,
)


def _saved(tmp_path: Path, model_class, config) -> Path:
    """A random model of `config` as the engine loads a base (grouped decode attention)."""
    torch.manual_seed(0)
    model_class(config).save_pretrained(str(tmp_path))
    return tmp_path


def _rows() -> list[Row]:
    shared = [1, *range(40, 50)]
    settings = [
        SamplingSettings(max_tokens=10, temperature=0.0),
        SamplingSettings(max_tokens=4, temperature=0.0),
        SamplingSettings(max_tokens=10, temperature=1.0, seed=3),
    ]
    tails = [[72, 101, 108], [87], [65, 66, 67, 68, 69]]
    return [
        Row(shared + tail, s, torch.Generator().manual_seed(s.seed) if s.seed else None)
        for tail, s in zip(tails, settings)
    ]


def _copies() -> list[Row]:
    """Three samples of one prompt (`num_samples=3`): all but its last token is the shared prefix,
    so even the first forward after it is a one-token step."""
    settings = SamplingSettings(max_tokens=6, temperature=1.0)
    prompt = [1, *range(40, 50), 72]
    return [Row(prompt, settings, torch.Generator().manual_seed(seed)) for seed in (1, 2, 3)]


def _sample(model, dtype: str, rows: list[Row]) -> list[tuple[list[int], list[float]]]:
    generation.generate(model, rows, choose_precision("cpu", dtype, shapes=None), 0, None)
    return [(row.tokens, row.logprobs) for row in rows]


def _assert_lean_equals_transformers(model, dtype: str, monkeypatch) -> None:
    widths = []
    call = decode_step.LeanDecodeStep.__call__
    monkeypatch.setattr(
        decode_step.LeanDecodeStep,
        "__call__",
        lambda s, *a: widths.append(len(a[1][0])) or call(s, *a),
    )
    lean = _sample(model, dtype, _rows()), _sample(model, dtype, _copies())
    assert widths, "the lean step did not run"
    assert widths[len(widths) - 6] == 12  # the copies' first step: the prefix + their last token
    monkeypatch.setattr(generation, "lean_decode_step", lambda model: None)
    assert lean == (_sample(model, dtype, _rows()), _sample(model, dtype, _copies()))
    assert [len(tokens) for tokens, _ in lean[0]] == [10, 4, 10]
    assert len({tuple(tokens) for tokens, _ in lean[1]}) > 1  # the copies sampled apart


def _qwen3(tmp_path):
    from transformers import Qwen3Config, Qwen3ForCausalLM

    config = Qwen3Config(**SHAPE, num_key_value_heads=2, head_dim=16)
    return _saved(tmp_path, Qwen3ForCausalLM, config)


def _llama_without_grouped_heads(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    return _saved(tmp_path, LlamaForCausalLM, LlamaConfig(**SHAPE, num_key_value_heads=4))


def _qwen2_with_biases(tmp_path):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    return _saved(tmp_path, Qwen2ForCausalLM, Qwen2Config(**SHAPE, num_key_value_heads=2))


def _mistral(tmp_path):
    from transformers import MistralConfig, MistralForCausalLM

    config = MistralConfig(**SHAPE, num_key_value_heads=1, sliding_window=None)
    return _saved(tmp_path, MistralForCausalLM, config)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize(
    "build", [_qwen3, _llama_without_grouped_heads, _qwen2_with_biases, _mistral]
)
def test_lean_step_samples_what_transformers_samples(build, dtype, tmp_path, monkeypatch):
    """Qwen3's per-head q/k norms, one query head per KV head, q/k/v biases, all heads on one KV
    head; in fp32 and under bf16 autocast on the bf16 prepacked linears."""
    compute = torch.bfloat16 if dtype == "bfloat16" else None
    model = load_frozen_causal_lm(build(tmp_path), "cpu", compute)
    assert decode_step.lean_decode_step(model) is not None
    _assert_lean_equals_transformers(model, dtype, monkeypatch)


def test_models_it_does_not_know_are_left_to_transformers(tmp_path):
    from transformers import (
        GPT2Config,
        GPT2LMHeadModel,
        MistralConfig,
        MistralForCausalLM,
        Qwen2Config,
        Qwen2ForCausalLM,
    )

    windowed = Qwen2Config(
        **SHAPE,
        num_key_value_heads=2,
        use_sliding_window=True,
        sliding_window=8,
        max_window_layers=0,
    )
    mistral = MistralConfig(**SHAPE, num_key_value_heads=2, sliding_window=8)
    gpt2 = GPT2Config(vocab_size=259, n_embd=64, n_layer=2, n_head=4, n_positions=256)
    for name, model_class, config in (
        ("windowed", Qwen2ForCausalLM, windowed),
        ("mistral", MistralForCausalLM, mistral),
        ("gpt2", GPT2LMHeadModel, gpt2),
    ):
        model = load_frozen_causal_lm(_saved(tmp_path / name, model_class, config), "cpu")
        assert decode_step.lean_decode_step(model) is None, name
    eager = load_frozen_causal_lm(_llama_without_grouped_heads(tmp_path / "eager"), "cpu")
    eager.set_attn_implementation("eager")
    assert decode_step.lean_decode_step(eager) is None


def test_logsumexp_reusing_the_maxima_gives_torchs_bits():
    """Finite rows, a row with -inf entries, an all -inf row and a row with +inf; on a copy it
    may overwrite and on a tensor it must leave alone."""
    torch.manual_seed(0)
    scores = torch.randn(5, 300) * 8
    scores[1, :100] = float("-inf")
    scores[2] = float("-inf")
    scores[3, 7] = float("inf")
    expected = torch.logsumexp(scores, dim=-1)
    maxima = scores.max(dim=-1).values
    kept = scores.clone()
    assert torch.equal(generation._logsumexp(kept, maxima, own=False), expected)
    assert torch.equal(kept, scores)
    assert torch.equal(generation._logsumexp(scores.clone(), maxima, own=True), expected)
