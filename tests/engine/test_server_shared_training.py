"""Concurrent training clients through the unmodified SDK: their queued `forward_backward`
calls run as one shared call, and each client still gets exactly its own step.

The compute thread is held by a long sampling request (seen running through `engine_stats`)
while three clients submit, so their requests are queued together; references are clients with
the same seeds and the same first step, whose second step runs alone. The session engine
computes in fp32.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from tinker import types

from server_support import TEXTS, TINY, logprobs_of, sft_datum

ADAM = types.AdamParams(learning_rate=0.05)
SPECS = [dict(rank=4, seed=21), dict(rank=8, seed=22, train_unembed=False), dict(rank=2, seed=23)]


def _data(tokenizer, index: int) -> list[types.Datum]:
    texts = TEXTS[index:] + TEXTS[:index]  # every client its own batch (different lengths)
    return [sft_datum(tokenizer.encode(text)) for text in texts[: index + 1]]


def _stats(raw) -> dict:
    return raw.get("/engine_stats").json()


def _step(client, batch: list[types.Datum]) -> types.ForwardBackwardOutput:
    result = client.forward_backward(batch, "cross_entropy").result()
    client.optim_step(ADAM).result()
    return result


def test_queued_clients_share_one_call_and_each_gets_its_own_step(service_client, raw, tokenizer):
    clients = [
        service_client.create_lora_training_client(base_model=TINY, **spec).result()
        for spec in SPECS
    ]
    references = [
        service_client.create_lora_training_client(base_model=TINY, **spec).result()
        for spec in SPECS
    ]
    data = [_data(tokenizer, index) for index in range(len(SPECS))]
    for client, reference, batch in zip(clients, references, data, strict=True):
        _step(client, batch)  # alone: every adapter's B is non-zero (and its own) from here on
        _step(reference, batch)
    sampler = service_client.create_sampling_client(base_model=TINY).result()
    before = _stats(raw)
    busy = sampler.sample(
        types.ModelInput.from_ints(tokenizer.encode(TEXTS[0])),
        64,
        types.SamplingParams(max_tokens=400, temperature=1.0, stop=[], seed=0),
    )
    while _stats(raw)["sample_batches"] == before["sample_batches"]:
        time.sleep(0.01)  # until the compute thread is inside the sampling call
    steps = [
        (client.forward_backward(batch, "cross_entropy"), client.optim_step(ADAM))
        for client, batch in zip(clients, data, strict=True)
    ]
    shared = [fb.result() for fb, _ in steps]
    for _, optim in steps:
        optim.result()
    busy.result()
    after = _stats(raw)
    assert after["shared_requests"] - before["shared_requests"] == len(SPECS)
    assert after["shared_calls"] - before["shared_calls"] == 1
    for reference, batch, got in zip(references, data, shared, strict=True):
        want = _step(reference, batch)
        # fp32 over a differently shaped batch: only the summation order may differ (~1e-7).
        assert got.metrics["loss:sum"] == pytest.approx(want.metrics["loss:sum"], rel=1e-5)
        for a, b in zip(logprobs_of(got), logprobs_of(want), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
