"""The frozen base model's linear layers, stored and run in the compute dtype.

Under `torch.autocast` a frozen fp32 weight is cast to bf16 on every call (autocast caches the
casts of leaf tensors that require grad only, and a frozen base requires none), so a decode step
of SmolLM2-135M re-reads 540 MB of fp32 and writes 270 MB of bf16 before any matmul; on the AMX
Xeon this made bf16 sampling barely faster than fp32. `use_compute_dtype_linears`
swaps every `nn.Linear` of the base for a `FrozenLinear` whose weight already holds the values
autocast would have produced (round-to-nearest bf16), and which casts its input the way autocast
does, so the outputs are the same bits as before. Embeddings and norms stay fp32, as under
autocast, which is why a tied output embedding gets its own bf16 copy. In fp32 the weights are
the model's own (no copy; a tied output embedding shares its input embedding's storage).

On CPU, no-grad calls (sampling and scoring) also skip oneDNN's per-call weight reorder: the weight
is reordered into oneDNN's blocked layout once (`torch.ops.mkldnn._reorder_linear_weight`, what
Inductor's CPU freezing pass uses). In bf16 this gave 16% on a batch of 32 decodes on the AMX Xeon.
In fp32 it replaces MKL's `sgemm`, which on a 2-core AMD EPYC (2026-12-07) ran a 16-row decode
projection 2.5-3x and the 49k-vocabulary output projection 3-4.5x slower than oneDNN's prepacked
kernel (docs/BENCHMARKS.md); the results differ from `F.linear`'s by fp32 rounding only (another
summation order). Calls that build a graph for backward use the plain weight, so training's numerics
are unchanged. Memory: on CPU the prepacked copy comes on top of the weight (in bf16 the two
together are what the fp32 weight took, in fp32 twice it); fine for the small models a CPU serves,
worth revisiting before serving multi-billion-parameter bases on CPU. PEFT wraps a `FrozenLinear`
like any Linear (it is one), so LoRA adapters work unchanged.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from tinker_chief.models import mark_embeddings_untied

if TYPE_CHECKING:
    from transformers import PreTrainedModel

_PACK_BATCH_HINT = (
    32  # oneDNN picks its blocking for this many rows; measured exact for 1..640 rows
)


@functools.cache
def mkldnn_prepack_available(dtype: torch.dtype = torch.bfloat16) -> bool:
    """True when oneDNN can prepack a weight of `dtype` on this CPU.

    oneDNN's bf16 reorder needs AVX512-BW/VL/DQ or AVX-NE-CONVERT; on a CPU without them (e.g. an
    AVX2-only AMD EPYC) it raises at prepack time, so the answer comes from prepacking a tiny weight
    once rather than from a list of CPU flags that PyTorch may change. Without it, `FrozenLinear`
    keeps plain weights, which give the same bits through `F.linear`.
    """
    if not (
        torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")
    ):
        return False
    try:
        torch.ops.mkldnn._reorder_linear_weight(torch.zeros(8, 8, dtype=dtype), _PACK_BATCH_HINT)
    except RuntimeError:
        return False
    return True


class FrozenLinear(torch.nn.Linear):
    """A Linear with a frozen weight in `dtype`; inputs are cast to it, outputs come out in it.

    `transposed`: calls that build a graph compute `(W @ x.T).T` instead of `x @ W.T`, same math
    and weight; for a vocabulary-sized fp32 output embedding on CPU, where MKL's `F.linear` ran
    at 26 GFLOP/s on the 2-core AVX2 machine and the transposed product at ~50 (training's
    chunked output projection)."""

    def __init__(
        self, source: torch.nn.Linear, dtype: torch.dtype, prepack: bool, transposed: bool = False
    ) -> None:
        super().__init__(
            source.in_features, source.out_features, bias=source.bias is not None, device="meta"
        )
        weight = source.weight.detach().to(dtype).contiguous()
        self.weight = torch.nn.Parameter(weight, requires_grad=False)
        self.bias = (
            None
            if source.bias is None
            else torch.nn.Parameter(source.bias.detach().to(dtype), requires_grad=False)
        )
        self.transposed = transposed
        self._packed = (
            None  # not a buffer, so `.to(device)` would leave it behind: swap after moving
        )
        if prepack and weight.device.type == "cpu":
            self._packed = torch.ops.mkldnn._reorder_linear_weight(weight, _PACK_BATCH_HINT)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.weight.dtype)
        if self._packed is not None and not (torch.is_grad_enabled() and x.requires_grad):
            return torch.ops.mkldnn._linear_pointwise(x, self._packed, self.bias, "none", [], "")
        if not self.transposed:
            return F.linear(x, self.weight, self.bias)
        flat = x.reshape(-1, x.shape[-1])
        out = torch.matmul(self.weight, flat.T).T
        if self.bias is not None:
            out = out + self.bias
        return out.reshape(*x.shape[:-1], self.out_features)


def use_compute_dtype_linears(model: PreTrainedModel, dtype: torch.dtype) -> int:
    """Replace every plain `nn.Linear` in `model` by a `FrozenLinear` in `dtype`; returns how
    many. Call before any adapter is injected (PEFT then wraps the frozen layers)."""
    prepack = mkldnn_prepack_available(dtype)
    output = model.get_output_embeddings()
    cpu_fp32 = dtype == torch.float32 and model.device.type == "cpu"
    # Plain Linears only: a subclass may have a forward of its own that a swap would lose.
    swaps = [
        (name, module) for name, module in model.named_modules() if type(module) is torch.nn.Linear
    ]
    for name, module in swaps:
        parent_name, _, leaf = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        transposed = cpu_fp32 and module is output
        setattr(parent, leaf, FrozenLinear(module, dtype, prepack, transposed))
    if dtype != torch.float32:
        mark_embeddings_untied(model.config)  # a tied output embedding now has its own copy
    return len(swaps)
