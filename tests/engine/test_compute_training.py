"""TorchBackend training, in process on tiny-random-llama in fp32: steps, losses, isolation.

The reference for "one step" is the same LoRA step done by hand with plain PEFT +
torch.optim.AdamW on a freshly loaded copy of the base model.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from peft import get_peft_model
from peft.utils import set_peft_model_state_dict

from tinker_chief.engine.backend import (
    AdamStep,
    DatumArrays,
    LoraSettings,
    SampleRequest,
    SamplingSettings,
)
from tinker_chief.engine.compute import TorchBackend, forward
from tinker_chief.engine.compute.base_pool import load_frozen_causal_lm
from tinker_chief.models import materialize_model

from compute_support import (
    TINY_MODEL,
    VOCAB,
    adapter_state,
    assert_states_close,
    fresh_id,
    sft_batch,
)

STEP = AdamStep(
    learning_rate=0.02, beta1=0.9, beta2=0.95, eps=1e-8, weight_decay=0.1, grad_clip_norm=1.0
)


@pytest.fixture(scope="module")
def backend() -> TorchBackend:
    return TorchBackend(device="cpu", dtype="float32")


def new_model(backend, seed=0, **spec) -> str:
    model_id = fresh_id()
    backend.create_training_model(model_id, TINY_MODEL, LoraSettings(rank=4, seed=seed, **spec))
    return model_id


def train(backend, model_id, batches, step=STEP) -> None:
    for batch in batches:
        backend.forward_backward(model_id, batch, "cross_entropy", {}, forward_only=False)
        backend.optim_step(model_id, step)


def peft_reference_steps(config, initial, batches, step=STEP) -> dict:
    """The same steps with plain PEFT + torch AdamW + clip_grad_norm_ on a fresh base."""
    base = load_frozen_causal_lm(materialize_model(TINY_MODEL), "cpu")
    model = get_peft_model(base, config)
    set_peft_model_state_dict(model, initial)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        params,
        lr=step.learning_rate,
        betas=(step.beta1, step.beta2),
        eps=step.eps,
        weight_decay=step.weight_decay,
    )
    for batch in batches:
        for datum in batch:
            tokens = torch.as_tensor(datum.tokens)[None]
            logits = model(input_ids=tokens).logits.float()
            targets = torch.as_tensor(datum.loss_fn_inputs["target_tokens"])[None, :, None]
            logprobs = torch.log_softmax(logits, -1).gather(-1, targets)[..., 0]
            (-(logprobs * torch.as_tensor(datum.loss_fn_inputs["weights"])).sum()).backward()
        torch.nn.utils.clip_grad_norm_(params, step.grad_clip_norm)
        optimizer.step()
        optimizer.zero_grad()
    from peft.utils import get_peft_model_state_dict

    return {
        k: v.detach().clone()
        for k, v in get_peft_model_state_dict(model, save_embedding_layers=False).items()
    }


@pytest.mark.parametrize("rows_per_chunk", [None, 5])
def test_steps_match_plain_peft_and_adamw(backend, monkeypatch, rows_per_chunk):
    if rows_per_chunk:  # the output projection in chunks of 5 positions, as a 49k vocab gets 128
        monkeypatch.setattr(forward, "CPU_CHUNK_BYTES", rows_per_chunk * 4 * VOCAB)
        assert forward.chunk_rows(VOCAB, torch.device("cpu")) == rows_per_chunk
    model_id = new_model(backend)
    initial = adapter_state(backend, model_id)
    batches = [sft_batch(1), sft_batch(2)]
    train(backend, model_id, batches)
    expected = peft_reference_steps(backend.lora_config(model_id), initial, batches)
    # Adam divides by sqrt(v): a float-rounding difference in a near-zero gradient becomes a
    # visible update difference, and the rounding depends on the CPU's kernels (up to 0.26% of a
    # step on an AVX-512 AMD EPYC, under 0.1% on an AMX Xeon), so compare at 0.5% of one
    # learning-rate step; a wrong gradient is off by a sizeable fraction of a whole step.
    assert_states_close(adapter_state(backend, model_id), expected, atol=5e-3 * STEP.learning_rate)
    # the step really moved the adapter (B starts at zero)
    assert any(not torch.equal(initial[k], expected[k]) for k in initial if "lora_B" in k)


def test_a_cpu_chunk_of_logits_stays_on_the_heap_and_cuda_keeps_the_memory_bound():
    rows = forward.chunk_rows(49152, torch.device("cpu"))  # SmolLM2's vocabulary
    assert rows == 128 and rows * 49152 * 4 < 32 * 2**20  # glibc's largest heap allocation
    assert forward.chunk_rows(151936, torch.device("cpu")) == 41  # Qwen3's
    assert forward.chunk_rows(49152, torch.device("cuda")) == forward.CHUNK_TOKENS


def test_targets_follow_the_spec(backend):
    full = backend.lora_config(new_model(backend)).target_modules
    assert set(full) == {
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
        "lm_head",
    }
    attn_only = backend.lora_config(
        new_model(backend, train_mlp=False, train_unembed=False)
    ).target_modules
    assert set(attn_only) == {"q_proj", "k_proj", "v_proj", "o_proj"}
    mlp_only = backend.lora_config(
        new_model(backend, train_attn=False, train_unembed=False)
    ).target_modules
    assert set(mlp_only) == {"gate_proj", "up_proj", "down_proj"}


def test_seed_makes_initialisation_reproducible(backend):
    first, second, other = (adapter_state(backend, new_model(backend, seed=s)) for s in (7, 7, 8))
    assert_states_close(first, second, atol=0.0)
    assert any(not torch.equal(first[k], other[k]) for k in first if "lora_A" in k)


def test_gradients_accumulate_across_calls_until_optim_step(backend):
    split, whole = new_model(backend, seed=3), new_model(backend, seed=3)
    batch = sft_batch(4, lengths=(5, 9, 6, 11))
    backend.forward_backward(split, batch[:2], "cross_entropy", {}, False)
    backend.forward_backward(split, batch[2:], "cross_entropy", {}, False)
    backend.optim_step(split, STEP)
    train(backend, whole, [batch])
    assert_states_close(adapter_state(backend, split), adapter_state(backend, whole), atol=1e-6)


def test_forward_only_leaves_no_gradient(backend):
    model_id = new_model(backend, seed=5)
    before = adapter_state(backend, model_id)
    backend.forward_backward(model_id, sft_batch(5), "cross_entropy", {}, forward_only=True)
    metrics = backend.optim_step(model_id, AdamStep(learning_rate=0.1))
    assert metrics["grad_norm:mean"] == 0.0
    assert_states_close(adapter_state(backend, model_id), before, atol=0.0)


def test_two_models_on_one_base_do_not_interfere(backend):
    a, b, solo = (
        new_model(backend, seed=11),
        new_model(backend, seed=11),
        new_model(backend, seed=11),
    )
    data_a, data_b = sft_batch(6), sft_batch(7)
    b_before = backend.forward_backward(b, data_b, "cross_entropy", {}, True).outputs
    # interleave A's and B's calls: B must still equal a model trained alone
    backend.forward_backward(a, data_a, "cross_entropy", {}, False)
    backend.forward_backward(b, data_b, "cross_entropy", {}, False)
    backend.optim_step(a, STEP)
    assert_states_close(adapter_state(backend, b), adapter_state(backend, solo), atol=0.0)
    backend.optim_step(b, STEP)
    train(backend, solo, [data_b])
    assert_states_close(adapter_state(backend, b), adapter_state(backend, solo), atol=0.0)
    b_after = backend.forward_backward(b, data_b, "cross_entropy", {}, True).outputs
    a_view = backend.forward_backward(a, data_b, "cross_entropy", {}, True).outputs
    assert not np.allclose(b_before[0]["logprobs"], b_after[0]["logprobs"])
    assert not np.allclose(a_view[0]["logprobs"], b_after[0]["logprobs"])


def test_save_load_continue_equals_uninterrupted(backend, tmp_path):
    steady, saved = new_model(backend, seed=21), new_model(backend, seed=21)
    batches = [sft_batch(s) for s in (31, 32, 33, 34)]
    train(backend, steady, batches)
    train(backend, saved, batches[:2])
    backend.save_training_state(saved, tmp_path / "state")
    resumed, weights_only = fresh_id("resumed"), fresh_id("weights-only")
    spec = backend.load_training_state(resumed, tmp_path / "state", with_optimizer=True)
    assert spec == LoraSettings(rank=4, seed=21)
    backend.load_training_state(weights_only, tmp_path / "state", with_optimizer=False)
    train(backend, resumed, batches[2:])
    train(backend, weights_only, batches[2:])
    assert_states_close(adapter_state(backend, resumed), adapter_state(backend, steady), atol=0.0)
    resumed_opt = backend._models[resumed].optimizer.export_state(backend._models[resumed].key_of)
    steady_opt = backend._models[steady].optimizer.export_state(backend._models[steady].key_of)
    assert_states_close(resumed_opt, steady_opt, atol=0.0)
    # without the Adam moments the continuation differs: the optimizer state really was restored
    fresh_moments, steady_state = (
        adapter_state(backend, weights_only),
        adapter_state(backend, steady),
    )
    assert any(not torch.equal(fresh_moments[k], steady_state[k]) for k in steady_state)


def test_unload_frees_the_model_id(backend):
    model_id = new_model(backend)
    backend.unload_model(model_id)
    backend.create_training_model(model_id, TINY_MODEL, LoraSettings(rank=2))
    assert (
        backend.forward_backward(model_id, sft_batch(8), "cross_entropy", {}, True).metrics[
            "loss:sum"
        ]
        > 0
    )


def test_base_model_samples_after_every_adapter_on_it_was_unloaded():
    """Unloading the last adapter, then adding another, must leave base-only sampling working
    (PEFT's record of the active adapter went stale and made it raise KeyError)."""
    backend = TorchBackend(device="cpu", dtype="float32")
    base_request = SampleRequest(
        TINY_MODEL, (1, 72, 101), 1, SamplingSettings(max_tokens=4, temperature=0.0)
    )
    before = backend.sample([base_request])[0].sequences[0].tokens
    first, second = new_model(backend), new_model(backend)
    backend.unload_model(first)
    backend.unload_model(second)
    new_model(backend)
    assert backend.sample([base_request])[0].sequences[0].tokens == before


def test_metrics_and_outputs_shape(backend):
    model_id = new_model(backend)
    batch = sft_batch(9, lengths=(3, 8))
    result = backend.forward_backward(model_id, batch, "cross_entropy", {}, False)
    assert [o["logprobs"].shape for o in result.outputs] == [(3,), (8,)]
    assert all(o["logprobs"].dtype == np.float32 for o in result.outputs)
    expected = -sum(
        float((o["logprobs"] * d.loss_fn_inputs["weights"]).sum())
        for o, d in zip(result.outputs, batch)
    )
    assert result.metrics["loss:sum"] == pytest.approx(expected, rel=1e-5)
    assert all(":" in key for key in backend.optim_step(model_id, STEP))


def test_datum_with_padding_scores_like_alone(backend):
    model_id = new_model(backend)
    batch = sft_batch(10, lengths=(3, 15))
    together = backend.forward_backward(model_id, batch, "cross_entropy", {}, True).outputs
    alone = backend.forward_backward(model_id, batch[:1], "cross_entropy", {}, True).outputs
    np.testing.assert_allclose(together[0]["logprobs"], alone[0]["logprobs"], atol=1e-5)


def test_empty_weights_datum_still_reports_logprobs(backend):
    model_id = new_model(backend)
    tokens = np.array([5, 6, 7], dtype=np.int64)
    datum = DatumArrays(
        tokens, {"target_tokens": np.array([6, 7, 8]), "weights": np.zeros(3, np.float32)}
    )
    result = backend.forward_backward(model_id, [datum], "cross_entropy", {}, False)
    assert result.metrics["loss:sum"] == 0.0
    assert (result.outputs[0]["logprobs"] < 0).all()
