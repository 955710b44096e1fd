"""Training through the real SDK over HTTP against a real engine (tiny-random-llama, float32).

Pins down what the server layer is responsible for: logprobs agree across forward,
compute_logprobs and sample; cross_entropy's loss:sum equals -sum(weight * logprob); requests
run in seq_id order even when they arrive out of order; clients on one base model do not
interfere; forward_backward_custom and the RL losses go through.
"""

from __future__ import annotations

import numpy as np
import pytest
from tinker import types
from tinker.proto.response_conv import deserialize_forward_backward_output

from server_support import TEXTS, TINY, fb_body, logprobs_of, raw_model, sft_datum, wait_raw


@pytest.fixture(scope="module")
def tokens(tokenizer):
    return [tokenizer.encode(text) for text in TEXTS]


def test_logprobs_agree_between_forward_compute_logprobs_and_sample(service_client, tokens):
    tc = service_client.create_lora_training_client(base_model=TINY, rank=4, seed=1).result()
    forward = logprobs_of(tc.forward([sft_datum(tokens[0])], "cross_entropy").result())[0]
    sampler = tc.save_weights_and_get_sampling_client().result()

    prompt_lps = sampler.compute_logprobs(types.ModelInput.from_ints(tokens[0])).result()
    assert prompt_lps[0] is None
    np.testing.assert_allclose(prompt_lps[1:], forward, rtol=1e-4, atol=1e-4)

    prompt = tokens[1][:6]
    sample = sampler.sample(
        types.ModelInput.from_ints(prompt),
        1,
        types.SamplingParams(max_tokens=8, temperature=1.0, seed=7, stop=[]),
    ).result()
    sequence = sample.sequences[0]
    assert len(sequence.tokens) == 8 and sequence.stop_reason == "length"
    rescored = logprobs_of(
        tc.forward([sft_datum(prompt + sequence.tokens)], "cross_entropy").result()
    )[0]
    np.testing.assert_allclose(sequence.logprobs, rescored[len(prompt) - 1 :], rtol=1e-4, atol=1e-4)


def test_cross_entropy_loss_sum_is_weighted_negative_logprob_sum(service_client, tokens):
    tc = service_client.create_lora_training_client(base_model=TINY, rank=2, seed=2).result()
    rng = np.random.default_rng(0)
    data = [sft_datum(t, list(rng.uniform(0, 2, len(t) - 1))) for t in tokens]
    output = tc.forward_backward(data, "cross_entropy").result()
    expected = -sum(
        float(np.dot(d.loss_fn_inputs["weights"].to_numpy(), lp))
        for d, lp in zip(data, logprobs_of(output), strict=True)
    )
    assert output.metrics["loss:sum"] == pytest.approx(expected, rel=1e-4)
    assert [len(lp) for lp in logprobs_of(output)] == [len(t) - 1 for t in tokens]


def test_queued_forward_backward_and_optim_step_run_in_order(service_client, tokens):
    tc = service_client.create_lora_training_client(base_model=TINY, rank=4, seed=3).result()
    data = [sft_datum(tokens[0])]
    before = tc.forward(data, "cross_entropy")
    step = tc.forward_backward(data, "cross_entropy")
    optim = tc.optim_step(types.AdamParams(learning_rate=0.05))
    after = tc.forward(data, "cross_entropy")  # all four queued before waiting on any
    loss_before, loss_step = before.result().metrics["loss:sum"], step.result().metrics["loss:sum"]
    optim.result()
    assert loss_step == pytest.approx(loss_before, rel=1e-6)  # fb ran before the optimizer step
    assert after.result().metrics["loss:sum"] < loss_before - 1e-3  # forward ran after it


def test_out_of_order_arrival_executes_in_seq_order(raw, tokens):
    """Raw HTTP: seq 3 (forward) and 2 (optim) arrive before 1 (forward_backward)."""
    data = [sft_datum(tokens[1])]

    def run(order: list[int]) -> float:
        model_id = raw_model(raw, seed=11)
        bodies = {
            1: ("forward_backward", fb_body(model_id, 1, data)),
            2: (
                "optim_step",
                {"model_id": model_id, "seq_id": 2, "adam_params": {"learning_rate": 0.05}},
            ),
            3: ("forward_backward", fb_body(model_id, 3, data, forward_only=True)),
        }
        ids = {}
        for seq in order:
            route, body = bodies[seq]
            response = (
                raw.post(f"/{route}", json=body)
                if isinstance(body, dict)
                else raw.post(
                    f"/{route}", content=body, headers={"Content-Type": "application/x-protobuf"}
                )
            )
            ids[seq] = response.json()["request_id"]
        results = {seq: wait_raw(raw, rid) for seq, rid in ids.items()}
        return deserialize_forward_backward_output(results[3].content).metrics["loss:sum"]

    in_order, reversed_arrival = run([1, 2, 3]), run([3, 2, 1])
    assert reversed_arrival == pytest.approx(in_order, rel=1e-6)


def test_rejected_request_does_not_block_later_ones(raw, tokens):
    model_id = raw_model(raw, seed=12)
    bad = raw.post("/forward_backward", content=fb_body(model_id, 1, [sft_datum([1, 2, 99999])]))
    assert bad.status_code == 400 and "outside the vocabulary" in bad.json()["error"]
    good = raw.post("/forward_backward", content=fb_body(model_id, 2, [sft_datum(tokens[0])]))
    result = wait_raw(
        raw, good.json()["request_id"], timeout=60
    )  # would time out if seq 1 blocked it
    assert result.headers["content-type"] == "application/x-protobuf"
    assert "loss:sum" in deserialize_forward_backward_output(result.content).metrics


def test_two_training_clients_on_one_base_do_not_interfere(service_client, tokens):
    data = [sft_datum(tokens[2])]
    first = service_client.create_lora_training_client(base_model=TINY, rank=4, seed=5).result()
    second = service_client.create_lora_training_client(base_model=TINY, rank=4, seed=5).result()
    initial = logprobs_of(second.forward(data, "cross_entropy").result())[0]
    for _ in range(3):
        first.forward_backward(data, "cross_entropy")
        first.optim_step(types.AdamParams(learning_rate=0.05)).result()
    trained = logprobs_of(first.forward(data, "cross_entropy").result())[0]
    untouched = logprobs_of(second.forward(data, "cross_entropy").result())[0]
    assert trained.sum() > initial.sum() + 1e-3
    np.testing.assert_allclose(untouched, initial, rtol=1e-6, atol=1e-6)


def test_forward_backward_custom_reports_the_custom_loss(service_client, tokens):
    import torch

    tc = service_client.create_lora_training_client(base_model=TINY, rank=2, seed=6).result()
    data = [sft_datum(t) for t in tokens[:2]]

    def mean_nll(batch, logprobs_list):
        loss = torch.stack([-lp.mean() for lp in logprobs_list]).sum()
        return loss, {"mean_nll": float(loss.detach())}

    output = tc.forward_backward_custom(data, mean_nll).result()
    expected = sum(-lp.mean() for lp in logprobs_of(tc.forward(data, "cross_entropy").result()))
    assert output.metrics["loss:sum"] == pytest.approx(expected, rel=1e-4)
    tc.optim_step(types.AdamParams(learning_rate=0.05)).result()
    after = sum(-lp.mean() for lp in logprobs_of(tc.forward(data, "cross_entropy").result()))
    assert after < expected


@pytest.mark.parametrize(
    "loss_fn,config",
    [
        ("importance_sampling", None),
        ("ppo", {"clip_low_threshold": 0.8, "clip_high_threshold": 1.2}),
        ("cispo", None),
        ("dro", {"beta": 0.1}),
    ],
)
def test_rl_losses_at_ratio_one_equal_minus_advantage_sum(service_client, tokens, loss_fn, config):
    """With sampler logprobs equal to the current ones the ratio is 1: loss = -sum(advantages)."""
    tc = service_client.create_lora_training_client(base_model=TINY, rank=2, seed=7).result()
    seq = tokens[0]
    current = logprobs_of(tc.forward([sft_datum(seq)], "cross_entropy").result())[0]
    advantages = np.linspace(-0.5, 1.5, len(seq) - 1).astype(np.float32)
    datum = types.Datum(
        model_input=types.ModelInput.from_ints(seq[:-1]),
        loss_fn_inputs={
            "target_tokens": np.asarray(seq[1:], dtype=np.int64),
            "logprobs": current.astype(np.float32),
            "advantages": advantages,
        },
    )
    output = tc.forward_backward([datum], loss_fn, config).result()
    np.testing.assert_allclose(logprobs_of(output)[0], current, rtol=1e-5, atol=1e-5)
    # cispo and dro keep the logprob itself in the loss
    expected = (
        -float(np.dot(advantages, current))
        if loss_fn in ("cispo", "dro")
        else -float(advantages.sum())
    )
    assert output.metrics["loss:sum"] == pytest.approx(expected, rel=1e-3, abs=1e-4)


def test_ppo_clip_threshold_comes_from_loss_fn_config(service_client, tokens):
    """Sampler logprobs 0.5 below the current ones: ratio e^0.5 ~ 1.65, clipped at the config's
    1.5."""
    tc = service_client.create_lora_training_client(base_model=TINY, rank=2, seed=8).result()
    seq = tokens[2]
    current = logprobs_of(tc.forward([sft_datum(seq)], "cross_entropy").result())[0]
    advantages = np.ones(len(seq) - 1, dtype=np.float32)
    datum = types.Datum(
        model_input=types.ModelInput.from_ints(seq[:-1]),
        loss_fn_inputs={
            "target_tokens": np.asarray(seq[1:], dtype=np.int64),
            "logprobs": (current - 0.5).astype(np.float32),
            "advantages": advantages,
        },
    )
    output = tc.forward(
        [datum], "ppo", {"clip_low_threshold": 0.5, "clip_high_threshold": 1.5}
    ).result()
    assert output.metrics["loss:sum"] == pytest.approx(-1.5 * advantages.sum(), rel=1e-4)


def test_unload_model_frees_the_client(raw, tokens):
    model_id = raw_model(raw, seed=13)
    unloaded = raw.post("/unload_model", json={"model_id": model_id})
    assert wait_raw(raw, unloaded.json()["request_id"]).json()["model_id"] == model_id
    after = raw.post("/forward_backward", content=fb_body(model_id, 1, [sft_datum(tokens[0])]))
    assert after.status_code == 404 and "unknown model_id" in after.json()["error"]
