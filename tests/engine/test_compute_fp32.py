"""The fp32 compute path on CPU: the frozen base's linears are `FrozenLinear`s holding the model's
own fp32 weights; where the precision probe picks oneDNN they keep a prepacked copy, which every
call runs (a graph-building one through `OneDnnLinear`, whose backward gives the input's gradient
by oneDNN too), with `F.linear`'s results up to fp32 rounding; else they run `F.linear` itself."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tinker_chief.engine.compute.base_pool import load_frozen_causal_lm
from tinker_chief.engine.compute.frozen_linear import FrozenLinear, mkldnn_prepack_available
from tinker_chief.models import materialize_model, resolve_model

from compute_support import TINY_MODEL

PACKS = mkldnn_prepack_available(torch.float32)


@pytest.mark.parametrize("prepack", [False, True] if PACKS else [False])
@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("rows", [1, 16, 33, 300])
def test_fp32_frozen_linear_agrees_with_f_linear_forward_and_backward(rows, transposed, prepack):
    torch.manual_seed(0)
    linear = torch.nn.Linear(96, 160, bias=True).requires_grad_(False)
    frozen = FrozenLinear(linear, torch.float32, prepack, transposed)
    assert frozen.weight.data_ptr() == linear.weight.data_ptr()  # fp32: no copy of the weight
    assert (frozen._packed is not None) == prepack
    x = torch.randn(2, rows, 96)
    expected = F.linear(x, linear.weight, linear.bias)
    with torch.no_grad():
        torch.testing.assert_close(frozen(x), expected, rtol=1e-5, atol=1e-5)
    grads, outs = [], []
    for layer in (linear, frozen):
        leaf = x.clone().requires_grad_(True)
        out = layer(leaf)
        (out * torch.linspace(-1, 1, 160)).square().sum().backward()
        grads.append(leaf.grad)
        outs.append(out.detach())
    if not (prepack or transposed):  # the plain weight: F.linear's own bits
        assert torch.equal(outs[1], expected) and torch.equal(grads[1], grads[0])
    torch.testing.assert_close(outs[1], expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("onednn", [False, True] if PACKS else [False])
def test_the_fp32_base_keeps_its_weights_and_ties_and_runs_the_chosen_kernel(onednn):
    directory = materialize_model(resolve_model(TINY_MODEL))
    model = load_frozen_causal_lm(directory, "cpu", fp32_onednn=onednn)
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(isinstance(m, FrozenLinear) for m in linears)
    assert all(m.weight.dtype == torch.float32 and not m.weight.requires_grad for m in linears)
    assert all((m._packed is not None) == onednn for m in linears)
    output = model.get_output_embeddings()
    assert output.transposed and sum(m.transposed for m in linears) == 1
    if model.config.tie_word_embeddings:  # tied stays tied: one storage, no untied copy
        assert output.weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
    tokens = torch.tensor([[1, 72, 101, 108, 108, 111, 2, 9]])
    with torch.no_grad():
        scored = model(tokens).logits
    hidden = model.model(tokens).last_hidden_state.detach().requires_grad_(True)
    trained = output(hidden)  # a graph-building call
    torch.testing.assert_close(scored, trained.detach(), rtol=1e-5, atol=1e-4)


@pytest.mark.skipif(not PACKS, reason="this torch cannot prepack an fp32 weight")
def test_fp32_weights_under_autocast_get_autocasts_cast_not_the_packed_kernel():
    """A model holding fp32 FrozenLinears run under bf16 autocast (the PEFT baseline of
    bench/engine_train.py) computes what autocast computes, in bf16."""
    torch.manual_seed(2)
    linear = torch.nn.Linear(64, 32).requires_grad_(False)
    frozen = FrozenLinear(linear, torch.float32, prepack=True)
    x = torch.randn(5, 64)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        expected, got = linear(x), frozen(x)
    assert got.dtype == torch.bfloat16 and torch.equal(got, expected)
