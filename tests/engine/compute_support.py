"""Helpers shared by the in-process compute-backend tests (tests/engine/test_compute_*.py)."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import torch

from tinker_chief.engine.backend import DatumArrays
from tinker_chief.models import TINY_MODEL

VOCAB = 259  # tiny-random-llama's byte-level vocabulary
_ids = itertools.count()


def fresh_id(prefix: str = "m") -> str:
    return f"{prefix}-{next(_ids)}"


def backend_with_model(rank: int) -> tuple[Any, str]:
    """An fp32 CPU backend with one fresh LoRA training model (seed 0) on the tiny model."""
    from tinker_chief.engine.backend import LoraSettings
    from tinker_chief.engine.compute import TorchBackend

    backend = TorchBackend(device="cpu", dtype="float32")
    model_id = fresh_id()
    backend.create_training_model(model_id, TINY_MODEL, LoraSettings(rank=rank, seed=0))
    return backend, model_id


def sft_datum(
    rng: np.random.Generator, length: int, extra: dict[str, np.ndarray] | None = None
) -> DatumArrays:
    """A random next-token datum with random non-negative weights."""
    tokens = rng.integers(3, VOCAB, length + 1)
    inputs = {
        "target_tokens": tokens[1:].astype(np.int64),
        "weights": rng.uniform(0.0, 1.0, length).astype(np.float32),
    }
    inputs.update(extra or {})
    return DatumArrays(tokens=tokens[:-1].astype(np.int64), loss_fn_inputs=inputs)


def sft_batch(seed: int, lengths=(7, 12, 4)) -> list[DatumArrays]:
    rng = np.random.default_rng(seed)
    return [sft_datum(rng, n) for n in lengths]


def adapter_state(backend, model_id: str) -> dict[str, torch.Tensor]:
    return backend.adapter_weights(model_id)


def assert_states_close(left: dict, right: dict, atol: float = 1e-6) -> None:
    assert left.keys() == right.keys()
    for key in left:
        torch.testing.assert_close(left[key], right[key], atol=atol, rtol=1e-5, msg=key)


def assert_growing_cache_matches_dynamic_cache(backend, sampler_key: str, monkeypatch) -> None:
    """The sampler's preallocated KV cache (regrowing past its first room, repeated after a shared
    prefix, shrunk as rows finish) gives the same tokens and logprobs, bit for bit, as
    transformers' concatenating DynamicCache."""
    from transformers import DynamicCache

    from tinker_chief.engine.backend import SampleRequest, SamplingSettings
    from tinker_chief.engine.compute import generation, kv_cache

    shared = (1, *range(40, 60))  # long enough to be prefilled once and shared
    requests = [
        SampleRequest(
            sampler_key, shared + tail, 1, SamplingSettings(max_tokens=n, temperature=0.0)
        )
        for tail, n in (((72, 101), 40), ((87,), 3), ((65, 66, 67), 25), ((50,), 40))
    ]
    reallocated = []  # one entry per allocation, naming the layer
    original = kv_cache.GrowingLayer._reallocate
    monkeypatch.setattr(
        kv_cache.GrowingLayer,
        "_reallocate",
        lambda layer, *a, **kw: reallocated.append(id(layer)) or original(layer, *a, **kw),
    )
    monkeypatch.setattr(kv_cache, "MIN_ROOM", 1)  # the first room (2x the prompt) is outgrown
    growing = backend.sample(requests)
    assert len(reallocated) > len(set(reallocated))  # layers regrew past their first room

    class ConcatenatingCache(DynamicCache):
        """transformers' own cache, in the sampler's place (it reports no buffers of its own)."""

        nbytes = 0

        def __init__(self, max_length: int | None = None) -> None:
            super().__init__()

    monkeypatch.setattr(generation, "GrowingKVCache", ConcatenatingCache)
    dynamic = backend.sample(requests)
    assert [len(r.sequences[0].tokens) for r in growing] == [40, 3, 25, 40]
    for a, b in zip(growing, dynamic):
        assert a.sequences[0].tokens == b.sequences[0].tokens
        assert a.sequences[0].logprobs == b.sequences[0].logprobs


def assert_lean_decode_matches_transformers(backend, sampler_key: str, monkeypatch) -> None:
    """The sampler's lean one-token decode step (`decode_step.py`) gives the tokens and logprobs,
    bit for bit, that transformers' own forward gives: left-padded rows after a shared prefix,
    greedy and seeded sampled rows, rows leaving the batch at different steps."""
    from tinker_chief.engine.backend import SampleRequest, SamplingSettings
    from tinker_chief.engine.compute import decode_step, generation

    shared = (1, *range(40, 52))
    requests = [
        SampleRequest(sampler_key, shared + tail, 1, SamplingSettings(max_tokens=n, **kw))
        for tail, n, kw in (
            ((72, 101, 108), 14, {"temperature": 0.0}),
            ((87,), 3, {"temperature": 0.0}),
            ((65, 66), 9, {"temperature": 1.0, "seed": 5}),
            ((50, 51, 52, 53, 54), 14, {"temperature": 0.7, "top_p": 0.9, "seed": 6}),
        )
    ]
    steps = []
    lean_call = decode_step.LeanDecodeStep.__call__
    monkeypatch.setattr(
        decode_step.LeanDecodeStep,
        "__call__",
        lambda step, *a, **kw: steps.append(a[0].shape[0]) or lean_call(step, *a, **kw),
    )
    lean = backend.sample(requests)
    assert steps and steps[0] == 4 and steps[-1] < 4  # it ran the decode steps, rows left
    monkeypatch.setattr(generation, "lean_decode_step", lambda model: None)
    reference = backend.sample(requests)
    assert [len(r.sequences[0].tokens) for r in lean] == [14, 3, 9, 14]
    for a, b in zip(lean, reference):
        assert a.sequences[0].tokens == b.sequences[0].tokens
        assert a.sequences[0].logprobs == b.sequences[0].logprobs


__all__ = [
    "TINY_MODEL",
    "VOCAB",
    "adapter_state",
    "assert_growing_cache_matches_dynamic_cache",
    "assert_lean_decode_matches_transformers",
    "assert_states_close",
    "fresh_id",
    "sft_batch",
    "sft_datum",
]
