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
    from tinker_chief.engine.backend import LoraSpec
    from tinker_chief.engine.compute import TorchBackend

    backend = TorchBackend(device="cpu", dtype="float32")
    model_id = fresh_id()
    backend.create_training_model(model_id, TINY_MODEL, LoraSpec(rank=rank, seed=0))
    return backend, model_id


def sft_datum(rng: np.random.Generator, length: int, extra: dict[str, np.ndarray] | None = None) -> DatumArrays:
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


__all__ = ["TINY_MODEL", "VOCAB", "adapter_state", "assert_states_close", "fresh_id", "sft_batch", "sft_datum"]
