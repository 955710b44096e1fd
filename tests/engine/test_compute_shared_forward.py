"""`TorchBackend.forward_backward_many`: several clients' calls in one batched forward.

Each client in a shared call must get exactly what it would have got alone: the same loss,
logprobs and gradients in its own adapter, and nothing in anyone else's. Each step compares the
shared call with the same calls made one at a time from the same weights (gradients cleared in
between), then takes an AdamW step, three times: at step 1 every adapter's B is zero, so only
later steps show a row run through the wrong adapter in the forward.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tinker_chief.engine.backend import (
    AdamStep,
    ForwardBackwardCall,
    InvalidRequestError,
    LoraSettings,
    NotFoundError,
)
from tinker_chief.engine.compute import TorchBackend

from compute_support import TINY_MODEL, VOCAB, fresh_id, sft_batch, sft_datum

STEP = AdamStep(learning_rate=0.02)
# Different ranks and targets, losses and batch shapes (the second is wider than the others,
# so the shared batch pads the rest).
CLIENTS = [
    (LoraSettings(rank=4, seed=1), "cross_entropy", sft_batch(11)),
    (
        LoraSettings(rank=8, seed=2, train_unembed=False),
        "cross_entropy",
        sft_batch(12, lengths=(25, 3)),
    ),
    (LoraSettings(rank=2, seed=3, train_attn=False), "importance_sampling", None),
]
# Tolerances, relative to each tensor's norm. float32: the same arithmetic over a differently
# shaped batch, where GEMM blocking may change the summation order (measured ~1e-6). bfloat16:
# the base linears round their outputs to bf16 (2^-9 relative), and a call padded to a wider
# batch runs attention over another length, so a value can move by one bf16 step, which the
# next layers and the backward spread (measured ~3e-3); 3e-2 leaves margin and still fails by
# far when a row runs through another client's adapter or a gradient lands in the wrong one.
TOLERANCE = {"float32": 1e-4, "bfloat16": 3e-2}


def _rl_batch(seed: int) -> list:
    rng = np.random.default_rng(seed)
    return [
        sft_datum(
            rng,
            n,
            {
                "logprobs": rng.normal(-2, 0.5, n).astype(np.float32),
                "advantages": rng.normal(0, 1, n).astype(np.float32),
            },
        )
        for n in (9, 14)
    ]


def _clients(backend: TorchBackend) -> list[tuple[str, str, list]]:
    made = []
    for spec, loss, batch in CLIENTS:
        model_id = fresh_id("shared")
        backend.create_training_model(model_id, TINY_MODEL, spec)
        made.append((model_id, loss, batch if batch is not None else _rl_batch(13)))
    return made


def _grads(backend: TorchBackend, model_id: str) -> dict[str, torch.Tensor]:
    """The adapter's accumulated gradients, which are then cleared."""
    model = backend._model(model_id)
    params = {
        model.key_of[name]: param for name, param in model.host.parameters(model.slot).items()
    }
    grads = {key: param.grad.clone() for key, param in params.items() if param.grad is not None}
    assert grads.keys() == params.keys()
    model.optimizer.zero_grad()
    return grads


def _close(
    left: torch.Tensor | np.ndarray, right: torch.Tensor | np.ndarray, tolerance: float, what: str
) -> None:
    left, right = torch.as_tensor(left), torch.as_tensor(right)
    error, scale = (
        float(torch.linalg.vector_norm(left - right)),
        float(torch.linalg.vector_norm(right)),
    )
    assert error <= tolerance * scale + 1e-6, (
        f"{what}: |difference| {error:.3g} vs |reference| {scale:.3g}"
    )


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_clients_sharing_a_forward_get_exactly_their_own_results_and_gradients(dtype):
    backend = TorchBackend(device="cpu", dtype=dtype)
    clients, tolerance = _clients(backend), TOLERANCE[dtype]
    for step in range(3):
        outcomes = backend.forward_backward_many(
            [ForwardBackwardCall(m, batch, loss, {}, False) for m, loss, batch in clients]
        )
        shared = [_grads(backend, model_id) for model_id, _, _ in clients]
        for (model_id, loss, batch), outcome, grads in zip(clients, outcomes, shared, strict=True):
            assert not isinstance(outcome, Exception), outcome
            reference = backend.forward_backward(model_id, batch, loss, {}, False)
            where = f"step {step}, {model_id}"
            _close(
                torch.tensor(outcome.metrics["loss:sum"]),
                torch.tensor(reference.metrics["loss:sum"]),
                tolerance,
                f"{where} loss",
            )
            for got, want in zip(outcome.outputs, reference.outputs, strict=True):
                _close(got["logprobs"], want["logprobs"], tolerance, f"{where} logprobs")
            alone = _grads(backend, model_id)
            for key in alone:
                _close(grads[key], alone[key], tolerance, f"{where} grad {key}")
            backend.forward_backward(model_id, batch, loss, {}, False)  # the step below uses these
            backend.optim_step(model_id, STEP)
    trained = backend.adapter_weights(clients[0][0])["base_model.model.lm_head.lora_B.weight"]
    assert trained.abs().max() > 0  # the later steps ran with non-zero adapters


def test_a_call_that_fails_its_own_checks_fails_alone_and_forward_only_calls_share_too():
    backend = TorchBackend(device="cpu", dtype="float32")
    (first, loss, batch), (second, _, other), _ = _clients(backend)
    out_of_vocab = sft_batch(3)
    out_of_vocab[0].tokens[2] = VOCAB
    outcomes = backend.forward_backward_many(
        [
            ForwardBackwardCall(first, batch, loss, {}, True),
            ForwardBackwardCall("ghost", batch, loss, {}, True),
            ForwardBackwardCall(second, out_of_vocab, loss, {}, True),
            ForwardBackwardCall(second, other, loss, {}, True),
        ]
    )
    assert isinstance(outcomes[1], NotFoundError) and isinstance(outcomes[2], InvalidRequestError)
    assert "outside the vocabulary" in str(outcomes[2])
    for outcome, (model_id, data) in (
        (outcomes[0], (first, batch)),
        (outcomes[3], (second, other)),
    ):
        assert not isinstance(outcome, Exception)
        reference = backend.forward_backward(model_id, data, loss, {}, True)
        for got, want in zip(outcome.outputs, reference.outputs, strict=True):
            _close(got["logprobs"], want["logprobs"], TOLERANCE["float32"], f"{model_id} logprobs")
    model = backend._model(first)
    assert all(
        param.grad is None for param in model.host.parameters(model.slot).values()
    )  # forward only
