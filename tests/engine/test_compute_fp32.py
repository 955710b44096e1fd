"""The fp32 compute path on CPU: the frozen base's linears are `FrozenLinear`s holding the model's
own fp32 weights, whose no-grad calls (sampling, scoring) run oneDNN's prepacked kernel and whose
graph-building calls (training) run the plain weight, so training's numerics do not change."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tinker_chief.engine.compute.base_pool import load_frozen_causal_lm
from tinker_chief.engine.compute.frozen_linear import FrozenLinear, mkldnn_prepack_available
from tinker_chief.models import materialize_model, resolve_model

from compute_support import TINY_MODEL

PACKS = mkldnn_prepack_available(torch.float32)


@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("rows", [1, 16, 33, 300])
def test_fp32_frozen_linear_agrees_with_f_linear_and_trains_with_its_bits(rows, transposed):
    torch.manual_seed(0)
    linear = torch.nn.Linear(96, 160, bias=True).requires_grad_(False)
    frozen = FrozenLinear(linear, torch.float32, PACKS, transposed)
    assert frozen.weight.data_ptr() == linear.weight.data_ptr()  # fp32: no copy of the weight
    assert (frozen._packed is not None) == PACKS
    x = torch.randn(2, rows, 96)
    expected = F.linear(x, linear.weight, linear.bias)
    with torch.no_grad():  # the prepacked kernel: another summation order, fp32 rounding apart
        torch.testing.assert_close(frozen(x), expected, rtol=1e-5, atol=1e-5)
    grads = []
    for layer in (linear, frozen):
        leaf = x.clone().requires_grad_(True)
        out = layer(leaf)
        if layer is frozen and not transposed:  # the plain weight: F.linear's own bits
            assert torch.equal(out, expected)
        out.square().sum().backward()
        grads.append(leaf.grad)
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-5, atol=1e-4)


def test_the_fp32_base_keeps_its_weights_and_ties_and_prepacks_every_linear():
    model = load_frozen_causal_lm(materialize_model(resolve_model(TINY_MODEL)), "cpu")
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(isinstance(m, FrozenLinear) for m in linears)
    assert all(m.weight.dtype == torch.float32 and not m.weight.requires_grad for m in linears)
    assert all((m._packed is not None) == PACKS for m in linears)
    output = model.get_output_embeddings()
    assert output.transposed and sum(m.transposed for m in linears) == 1
    if model.config.tie_word_embeddings:  # tied stays tied: one storage, no untied copy
        assert output.weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
    tokens = torch.tensor([[1, 72, 101, 108, 108, 111, 2, 9]])
    with torch.no_grad():
        packed = model(tokens).logits
    hidden = model.model(tokens).last_hidden_state.detach().requires_grad_(True)
    plain = output(hidden)  # a graph-building call: the plain weight
    torch.testing.assert_close(packed, plain.detach(), rtol=1e-5, atol=1e-4)
