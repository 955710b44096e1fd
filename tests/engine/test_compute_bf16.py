"""The bf16 compute path: a frozen base whose linear layers hold bf16 weights (`FrozenLinear`)
gives autocast's exact bits, trains LoRA adapters and samples consistently with its own forward."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tinker_chief.engine.backend import (
    AdamStep,
    DatumArrays,
    LoraSettings,
    SampleRequest,
    SamplingSettings,
)
from tinker_chief.engine.compute import TorchBackend, frozen_linear
from tinker_chief.engine.compute.frozen_linear import (
    FrozenLinear,
    mkldnn_prepack_available,
    use_compute_dtype_linears,
)

from compute_support import (
    TINY_MODEL,
    assert_growing_cache_matches_dynamic_cache,
    assert_lean_decode_matches_transformers,
    fresh_id,
    sft_batch,
)

PACKINGS = [False, True] if mkldnn_prepack_available() else [False]


def _autocast():
    return torch.autocast("cpu", dtype=torch.bfloat16)


@pytest.mark.parametrize("prepack", PACKINGS)
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("shape", [(5, 48), (3, 7, 48), (1, 1, 48)])
def test_frozen_linear_gives_autocasts_bits(prepack, bias, shape):
    torch.manual_seed(0)
    linear = torch.nn.Linear(48, 80, bias=bias).requires_grad_(False)
    frozen = FrozenLinear(linear, torch.bfloat16, prepack)
    x = torch.randn(*shape)
    with torch.no_grad(), _autocast():
        expected = linear(x)
        got = frozen(x)
    assert got.dtype == expected.dtype == torch.bfloat16
    assert torch.equal(got, expected)
    assert (frozen._packed is not None) == prepack
    assert frozen.weight.dtype == torch.bfloat16 and not frozen.weight.requires_grad


@pytest.mark.parametrize("prepack", PACKINGS)
def test_frozen_linear_passes_gradients_to_its_input_like_autocast(prepack):
    torch.manual_seed(1)
    linear = torch.nn.Linear(32, 16).requires_grad_(False)
    frozen = FrozenLinear(linear, torch.bfloat16, prepack)
    grads = []
    for layer in (linear, frozen):
        x = torch.randn(4, 32, generator=torch.Generator().manual_seed(2), requires_grad=True)
        with _autocast():
            layer(x).float().square().sum().backward()
        grads.append(x.grad)
    torch.testing.assert_close(grads[1], grads[0], rtol=0, atol=0)


def _tiny_llama(**overrides):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=50,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        **overrides,
    )
    return LlamaForCausalLM(config).eval().requires_grad_(False)


def test_swapping_unties_a_tied_output_embedding():
    model = _tiny_llama(tie_word_embeddings=True)
    linears = sum(isinstance(m, torch.nn.Linear) for m in model.modules())
    assert use_compute_dtype_linears(model, torch.bfloat16) == linears
    assert all(
        isinstance(m, FrozenLinear) for m in model.modules() if isinstance(m, torch.nn.Linear)
    )
    assert (
        model.get_input_embeddings().weight.dtype == torch.float32
    )  # embeddings stay fp32, as under autocast
    assert model.lm_head.weight.dtype == torch.bfloat16 and not model.config.tie_word_embeddings
    model.tie_weights()  # must not re-tie the bf16 copy to the fp32 embedding
    assert model.lm_head.weight.dtype == torch.bfloat16


@pytest.mark.skipif(not mkldnn_prepack_available(), reason="this CPU cannot prepack bf16 weights")
@pytest.mark.parametrize("bias", [False, True])
def test_shared_input_siblings_run_as_one_product_with_autocasts_bits(bias, counted_products):
    model = _tiny_llama(attention_bias=bias, mlp_bias=bias)
    tokens = torch.tensor([[1, 5, 9, 3, 7], [2, 4, 6, 8, 10]])
    with torch.no_grad(), _autocast():
        expected = model(tokens).logits
    use_compute_dtype_linears(model, torch.bfloat16)
    attention, mlp = model.model.layers[0].self_attn, model.model.layers[0].mlp
    siblings = [attention.q_proj, attention.k_proj, attention.v_proj, mlp.gate_proj, mlp.up_proj]
    assert all(m._group is not None and m._packed is None for m in siblings)
    assert attention.o_proj._group is None and attention.o_proj._packed is not None
    with torch.no_grad(), _autocast():
        assert torch.equal(model(tokens).logits, expected)
    # Per layer: q/k/v as one product, gate/up as one, o and down alone; then the output layer.
    assert len(counted_products) == 2 * 4 + 1
    assert all(m._group[0]._pending is None for m in siblings)  # nothing held after the step


@pytest.mark.skipif(not mkldnn_prepack_available(), reason="this CPU cannot prepack bf16 weights")
def _alone(layer, x):
    """What `layer` computes without a group: autocast's bits."""
    return F.linear(x.to(torch.bfloat16), layer.weight, layer.bias)


@pytest.fixture
def counted_products(monkeypatch):
    """A list that gets an entry per oneDNN product `frozen_linear` runs."""
    calls: list[int] = []
    product = frozen_linear.prepacked_linear
    monkeypatch.setattr(
        frozen_linear, "prepacked_linear", lambda *a: calls.append(1) or product(*a)
    )
    return calls


@pytest.mark.skipif(not mkldnn_prepack_available(), reason="this CPU cannot prepack bf16 weights")
def test_a_shared_input_group_computes_again_for_another_input_a_second_ask_or_an_edit(
    counted_products,
):
    model = _tiny_llama()
    use_compute_dtype_linears(model, torch.bfloat16)
    attention = model.model.layers[0].self_attn
    q, k, v = attention.q_proj, attention.k_proj, attention.v_proj
    first, second = torch.randn(3, 32), torch.randn(3, 32)
    with torch.no_grad():
        for _ in range(3):  # finished products: the odd unfinished one below never disbands
            assert [torch.equal(m(first), _alone(m, first)) for m in (q, k, v)] == [True] * 3
        assert len(counted_products) == 3
        assert torch.equal(q(first), _alone(q, first))
        assert torch.equal(k(second), _alone(k, second))  # not q's product of `first`
        assert len(counted_products) == 5
        assert torch.equal(k(second), _alone(k, second))  # asked twice: a new product
        assert len(counted_products) == 6
        second.mul_(2)  # changed in place: the product of its old values must not serve
        assert torch.equal(v(second), _alone(v, second))
        assert len(counted_products) == 7
        assert torch.equal(q(second), _alone(q, second))  # v's product serves q and k
        assert torch.equal(k(second), _alone(k, second))
        assert len(counted_products) == 7 and q._group is not None
    x = torch.randn(3, 32)  # no grad of its own, as a training step's first layer gets
    pending = q._group[0]._pending
    out = q(x)  # gradients enabled: the sibling's own product, the group untouched
    assert q._group[0]._pending is pending and torch.equal(out, _alone(q, x))


@pytest.mark.skipif(not mkldnn_prepack_available(), reason="this CPU cannot prepack bf16 weights")
def test_siblings_that_read_different_inputs_disband_their_group_and_stay_right():
    """Cross-attention's pattern: q reads one tensor, k and v another, on every call."""
    model = _tiny_llama()
    use_compute_dtype_linears(model, torch.bfloat16)
    attention = model.model.layers[0].self_attn
    q, k, v = attention.q_proj, attention.k_proj, attention.v_proj
    with torch.no_grad():
        for _ in range(4):
            queries, memory = torch.randn(2, 32), torch.randn(5, 32)
            assert torch.equal(q(queries), _alone(q, queries))
            assert torch.equal(k(memory), _alone(k, memory))
            assert torch.equal(v(memory), _alone(v, memory))
    assert all(m._group is None and m._packed is not None for m in (q, k, v))
    mlp = model.model.layers[0].mlp  # the other groups keep theirs
    assert mlp.gate_proj._group is not None


@pytest.mark.skipif(not mkldnn_prepack_available(), reason="this CPU cannot prepack bf16 weights")
def test_lora_wrapped_siblings_share_the_product_with_autocasts_bits(counted_products):
    """PEFT's LoRA layers hand their input to the base layer unchanged: still one product."""
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=4,
        target_modules=["q_proj", "k_proj", "v_proj", "gate_proj", "up_proj"],
        init_lora_weights=False,  # random B: the adapters change the output
    )
    reference, grouped = _tiny_llama(), _tiny_llama()
    use_compute_dtype_linears(grouped, torch.bfloat16)
    torch.manual_seed(1)
    reference = get_peft_model(reference, lora)
    torch.manual_seed(1)
    grouped = get_peft_model(grouped, lora)
    tokens = torch.tensor([[3, 1, 4, 1, 5, 9]])
    with torch.no_grad(), _autocast():
        expected = reference(tokens).logits
        assert not counted_products  # the plain model runs F.linear
        assert torch.equal(grouped(tokens).logits, expected)
    assert len(counted_products) == 2 * 4 + 1


@pytest.fixture
def cpu_without_bf16_prepack(monkeypatch):
    """oneDNN as it behaves on an AVX2-only CPU (e.g. AMD EPYC without AVX-512): prepacking a
    bf16 weight raises. Simulated so the fallback is tested on every machine."""
    from tinker_chief.engine.compute import frozen_linear

    reorder = torch.ops.mkldnn._reorder_linear_weight

    def refuse(weight, *args, **kwargs):
        if weight.dtype != torch.bfloat16:  # fp32 prepacking works on every x86 CPU
            return reorder(weight, *args, **kwargs)
        raise RuntimeError(
            "mkldnn_reorder_linear_weight: bf16 path needs the cpu support avx_ne_convert "
            "or avx512bw, avx512vl and avx512dq"
        )

    monkeypatch.setattr(torch.ops.mkldnn, "_reorder_linear_weight", refuse)
    frozen_linear.mkldnn_prepack_available.cache_clear()
    yield
    frozen_linear.mkldnn_prepack_available.cache_clear()


def test_a_cpu_that_cannot_prepack_bf16_keeps_plain_bf16_weights_with_autocasts_bits(
    cpu_without_bf16_prepack,
):
    assert not mkldnn_prepack_available()
    assert mkldnn_prepack_available(torch.float32) == torch.backends.mkldnn.is_available()
    model = _tiny_llama()
    tokens = torch.tensor([[1, 5, 9, 3]])
    with torch.no_grad(), _autocast():
        expected = model(tokens).logits
    use_compute_dtype_linears(model, torch.bfloat16)
    frozen = [m for m in model.modules() if isinstance(m, FrozenLinear)]
    assert frozen and all(m._packed is None and m.weight.dtype == torch.bfloat16 for m in frozen)
    with torch.no_grad(), _autocast():
        assert torch.equal(model(tokens).logits, expected)


@pytest.fixture(scope="module")
def bf16_backend() -> TorchBackend:
    return TorchBackend(device="cpu", dtype="bfloat16")


def test_bf16_backend_keeps_base_linears_in_bf16_and_lora_in_fp32(bf16_backend):
    model_id = fresh_id("bf16")
    bf16_backend.create_training_model(
        model_id, TINY_MODEL, LoraSettings(rank=4, seed=0, train_unembed=True)
    )
    base = bf16_backend._bases.get(TINY_MODEL).model
    frozen = [m for m in base.modules() if isinstance(m, FrozenLinear)]
    assert frozen and all(m.weight.dtype == torch.bfloat16 for m in frozen)
    model = bf16_backend._model(model_id)
    live = model.host.parameters(model.slot)  # the tensors training updates, not a saved copy
    assert live and all(p.dtype == torch.float32 and p.requires_grad for p in live.values())
    assert any("lm_head" in name for name in live)
    bf16_backend.unload_model(model_id)


def test_bf16_backend_learns_a_batch(bf16_backend):
    model_id = fresh_id("bf16")
    bf16_backend.create_training_model(
        model_id, TINY_MODEL, LoraSettings(rank=8, seed=0, train_unembed=True)
    )
    batch = sft_batch(5)
    losses = []
    for _ in range(8):
        out = bf16_backend.forward_backward(model_id, batch, "cross_entropy", {}, False)
        losses.append(out.metrics["loss:sum"])
        bf16_backend.optim_step(model_id, AdamStep(learning_rate=0.02))
    assert all(np.isfinite(losses)) and losses[-1] < 0.8 * losses[0], losses
    bf16_backend.unload_model(model_id)


def test_bf16_sampled_logprobs_agree_with_forward(bf16_backend):
    model_id = fresh_id("bf16")
    bf16_backend.create_training_model(model_id, TINY_MODEL, LoraSettings(rank=4, seed=3))
    bf16_backend.forward_backward(model_id, sft_batch(1), "cross_entropy", {}, False)
    bf16_backend.optim_step(model_id, AdamStep(learning_rate=0.05))
    key = bf16_backend.snapshot_for_sampling(model_id)
    prompt = (1, 72, 101, 108, 108, 111)
    settings = SamplingSettings(max_tokens=8, temperature=1.0, seed=7, stop_tokens=())
    batch = [SampleRequest(key, prompt, 2, settings), SampleRequest(key, (1, 50, 51), 1, settings)]
    sequence = bf16_backend.sample(batch)[0].sequences[0]
    alone = bf16_backend.sample(batch[:1])[0].sequences[0]
    assert (
        sequence.tokens == alone.tokens and len(sequence.tokens) == 8
    )  # a seed reproduces in any batch
    tokens = list(prompt) + sequence.tokens
    datum = DatumArrays(
        np.array(tokens[:-1]),
        {"target_tokens": np.array(tokens[1:]), "weights": np.ones(len(tokens) - 1, np.float32)},
    )
    scored = bf16_backend.forward_backward(model_id, [datum], "cross_entropy", {}, True).outputs[0][
        "logprobs"
    ]
    # bf16 matmuls round differently at different batch shapes; the same weights agree closely.
    np.testing.assert_allclose(sequence.logprobs, scored[len(prompt) - 1 :], atol=0.05)


def test_bf16_kv_cache_stores_keys_cast_once_with_the_same_results(bf16_backend, monkeypatch):
    """Under autocast the cache keeps keys and values in bf16 (attention casts them anyway)."""
    from tinker_chief.engine.compute.kv_cache import GrowingKVCache

    cache = GrowingKVCache()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        keys, values = cache.update(torch.randn(2, 1, 3, 4), torch.randn(2, 1, 3, 4), 0)
    assert keys.dtype == values.dtype == torch.bfloat16
    assert_growing_cache_matches_dynamic_cache(bf16_backend, TINY_MODEL, monkeypatch)


def test_bf16_lean_decode_step_samples_what_transformers_samples(bf16_backend, monkeypatch):
    """Under autocast, on the base's bf16 prepacked linears and their grouped q/k/v products."""
    assert_lean_decode_matches_transformers(bf16_backend, TINY_MODEL, monkeypatch)


def test_bf16_training_goes_on_between_samples_of_its_own_weights(bf16_backend):
    """An RL loop's pattern: decode from the training adapter itself (`live_sampler`), train,
    decode again. The decode loop runs in inference mode; nothing it makes (KV cache, packed
    weights of a disbanded group) may reach the next training step's graph."""
    model_id = fresh_id("bf16")
    bf16_backend.create_training_model(model_id, TINY_MODEL, LoraSettings(rank=4, seed=2))
    key = bf16_backend.live_sampler(model_id)
    settings = SamplingSettings(max_tokens=6, temperature=0.0, stop_tokens=())
    request = SampleRequest(key, (1, 72, 101, 108), 2, settings)
    before = bf16_backend.sample([request])[0].sequences[0].logprobs
    losses = []
    for _ in range(3):
        out = bf16_backend.forward_backward(model_id, sft_batch(4), "cross_entropy", {}, False)
        losses.append(out.metrics["loss:sum"])
        bf16_backend.optim_step(model_id, AdamStep(learning_rate=0.05))
        after = bf16_backend.sample([request])[0].sequences[0].logprobs
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert after != before  # the live sampler decoded with the trained weights
    bf16_backend.unload_model(model_id)
