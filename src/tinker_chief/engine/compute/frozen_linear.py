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
Inductor's CPU freezing pass uses). In bf16 this gave 16% on a batch of 32 decodes on the AMX Xeon;
calls that build a graph use `F.linear` on the plain weight (autocast's bits). In fp32 the packed
weight is used where the precision probe (`devices.py`) found oneDNN faster than `F.linear`
(MKL's sgemm), for every call: on a 2-core AMD EPYC (2026-12-07) MKL ran a 16-row decode
projection 2.5-3x, the 49k-vocabulary output projection 3-4.5x and training's 2048-row
projections 2.2x slower than oneDNN. A graph-building fp32 call then runs `OneDnnLinear`, whose
backward (the input's gradient: the weight is frozen) is oneDNN on the plain weight's transpose,
read in place. fp32 results differ from `F.linear`'s by rounding only (another summation order).
Memory: on CPU the prepacked copy comes on top of the weight (in bf16 the two together are what
the fp32 weight took, in fp32 twice it); fine for the small models a CPU serves, worth revisiting
before serving multi-billion-parameter bases on CPU. PEFT wraps a `FrozenLinear` like any Linear
(it is one), so LoRA adapters work unchanged.

Projections that read the same input (`SHARED_INPUT_SIBLINGS`: an attention block's q/k/v, an
MLP's gate/up) run as one product on their packed, concatenated weights under `torch.no_grad()`
(sampling and scoring; `SharedInputGroup`): the first sibling called computes all of them and
the others take their columns. Same bits as separate products (oneDNN blocks the reduction the
same way whatever the output width: checked at 1..700 rows), one weight stream and one call
instead of three: a 1-row decode step of SmolLM2-135M in bf16 took 12% less time on the 2-core
EPYC (2026-12-07). fp32 keeps separate products: grouped, its 1-row and 16-row decode steps
measured the same there (and its packed copies also serve graph-building calls, so grouping
would need a second copy).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from tinker_chief.models import mark_embeddings_untied

if TYPE_CHECKING:
    from transformers import PreTrainedModel

# Projections of one input that transformers' decoder layers call one after another (Llama,
# Qwen, Mistral, Gemma and their kin name them so): `group_shared_inputs` runs each set as one.
SHARED_INPUT_SIBLINGS = (("q_proj", "k_proj", "v_proj"), ("gate_proj", "up_proj"))

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
        prepacked_weight(torch.zeros(8, 8, dtype=dtype))
    except RuntimeError:
        return False
    return True


def prepacked_weight(weight: torch.Tensor) -> torch.Tensor:
    """`weight` (out x in) reordered once into oneDNN's blocked layout for `prepacked_linear`."""
    return torch.ops.mkldnn._reorder_linear_weight(weight, _PACK_BATCH_HINT)


def prepacked_linear(
    x: torch.Tensor, packed: torch.Tensor, bias: torch.Tensor | None
) -> torch.Tensor:
    """`x @ W.T + bias` by oneDNN, `W` given as `prepacked_weight(W)` or as a plain tensor (which
    oneDNN then reorders on the call; a transposed view is read in place)."""
    return torch.ops.mkldnn._linear_pointwise(x, packed, bias, "none", [], "")


class OneDnnLinear(torch.autograd.Function):
    """`x @ W.T + b` for a frozen fp32 `W`, forward and backward by oneDNN: the forward on the
    prepacked weight, the backward (the input's gradient only) as `grad @ W`, i.e. a linear layer
    with weight `W.T`, which oneDNN reads from the plain weight without a copy."""

    @staticmethod
    def forward(
        ctx: torch.autograd.function.FunctionCtx,
        x: torch.Tensor,
        packed: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
    ) -> torch.Tensor:
        ctx.save_for_backward(weight)
        return prepacked_linear(x, packed, bias)

    @staticmethod
    def backward(
        ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor
    ) -> tuple[torch.Tensor, None, None, None]:
        (weight,) = ctx.saved_tensors  # type: ignore[attr-defined]  # set by save_for_backward
        return prepacked_linear(grad.contiguous(), weight.t(), None), None, None, None


class FrozenLinear(torch.nn.Linear):
    """A Linear with a frozen weight in `dtype`; inputs are cast to it, outputs come out in it.

    `prepack`: keep a oneDNN-packed copy for CPU calls (bf16: no-grad calls; fp32: every call).
    `transposed`: graph-building calls on an unpacked weight compute `(W @ x.T).T` instead of
    `x @ W.T`, same math and weight; for a vocabulary-sized fp32 output embedding on CPU, where
    MKL's `F.linear` ran at 26 GFLOP/s on the 2-core AVX2 machine and the transposed product at
    ~50 (training's chunked output projection)."""

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
            self._packed = prepacked_weight(weight)
        self._group: tuple[SharedInputGroup, int] | None = None  # (its group, its place there)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fp32 = self.weight.dtype == torch.float32
        # fp32 weights under autocast (bench/engine_train.py's PEFT loop): autocast's cast, as an
        # `nn.Linear` would get, not the packed fp32 kernels autocast cannot see.
        kernels = not (fp32 and torch.is_autocast_enabled(x.device.type))
        grad_mode = torch.is_grad_enabled()
        graph = grad_mode and x.requires_grad
        if kernels and not grad_mode and self._group is not None:
            group, place = self._group
            return group.columns(place, x)
        x = x.to(self.weight.dtype)
        packed = self._packed if kernels else None
        if packed is not None:
            if not graph:
                return prepacked_linear(x, packed, self.bias)
            if fp32:
                return OneDnnLinear.apply(x, packed, self.weight, self.bias)
        if not self.transposed:
            return F.linear(x, self.weight, self.bias)
        flat = x.reshape(-1, x.shape[-1])
        out = torch.matmul(self.weight, flat.T).T
        if self.bias is not None:
            out = out + self.bias
        return out.reshape(*x.shape[:-1], self.out_features)


def use_compute_dtype_linears(
    model: PreTrainedModel, dtype: torch.dtype, prepack: bool | None = None
) -> int:
    """Replace every plain `nn.Linear` in `model` by a `FrozenLinear` in `dtype`; returns how
    many. `prepack`: keep oneDNN-packed copies (default: in bf16 wherever oneDNN can, in fp32
    never; the engine passes the precision probe's fp32 choice). Call before any adapter is
    injected (PEFT then wraps the frozen layers)."""
    if prepack is None:
        prepack = dtype == torch.bfloat16
    prepack = prepack and mkldnn_prepack_available(dtype)
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
    if prepack and dtype != torch.float32:
        group_shared_inputs(model)
    if dtype != torch.float32:
        mark_embeddings_untied(model.config)  # a tied output embedding now has its own copy
    return len(swaps)


@dataclass(frozen=True)
class _Pending:
    """A group's product of one input, until every sibling has taken its columns."""

    input: torch.Tensor  # held, so no other tensor can take its identity meanwhile
    version: int | None  # the input's version counter then (None: an inference tensor has none)
    output: torch.Tensor
    taken: frozenset[int]

    def serves(self, place: int, x: torch.Tensor) -> bool:
        """Whether sibling `place` may take its columns for `x`: the same tensor, not changed in
        place since, and the sibling has not taken them yet."""
        return self.input is x and _version(x) == self.version and place not in self.taken


def _version(x: torch.Tensor) -> int | None:
    return None if x.is_inference() else x._version


class SharedInputGroup:
    """Sibling `FrozenLinear`s that read the same input, run as one product under no_grad.

    Siblings are called one after another with the very same tensor (transformers' attention
    hands `hidden_states` to q, k and v, its MLP `x` to gate and up, and PEFT's LoRA layers pass
    it on to their base layer unchanged), so the group recognises the input by identity (and its
    version counter, so an input changed in place is a new one): the first sibling's call
    computes every sibling's output, each takes its columns (a view) once, and the product is
    dropped when all have. Another input, or a sibling asking twice, starts a new product, so a
    caller that runs the siblings on different inputs still gets right answers; a group whose
    products are mostly left unfinished (cross-attention, where q reads another tensor than k
    and v; layers that call only some siblings) disbands after `MAX_UNFINISHED` of them: each
    sibling gets its own packed weight back and runs alone, as before grouping. (A forward that
    failed between two siblings leaves one unfinished product too: that alone never disbands a
    group that has finished more.) Only calls with gradients disabled use the group: in a
    training step the product would be part of a graph that one sibling's in-place update could
    hand to the others.
    """

    MAX_UNFINISHED = 2

    def __init__(self, members: Sequence[FrozenLinear]) -> None:
        weights = [member.weight for member in members]
        self.dtype = weights[0].dtype
        self.packed = prepacked_weight(torch.cat(weights))
        biases = [member.bias for member in members]
        self.bias = (
            None
            if all(bias is None for bias in biases)
            else torch.cat(
                [
                    torch.zeros_like(weight[:, 0]) if bias is None else bias
                    for weight, bias in zip(weights, biases)
                ]
            )
        )
        ends = list(itertools.accumulate(weight.shape[0] for weight in weights))
        self._columns = [slice(end - w.shape[0], end) for end, w in zip(ends, weights)]
        self._members = list(members)
        self._pending: _Pending | None = None
        self.finished = self.unfinished = 0
        for place, member in enumerate(members):
            member._group = (self, place)
            member._packed = None  # its columns of `packed` serve its no-grad calls now

    def columns(self, place: int, x: torch.Tensor) -> torch.Tensor:
        """Sibling `place`'s output for `x`: its columns of the group's product."""
        pending = self._pending  # read once: another thread may replace it meanwhile
        if pending is None or not pending.serves(place, x):
            if pending is not None:
                self.unfinished += 1
                if self.unfinished >= max(self.MAX_UNFINISHED, self.finished + 1):
                    return self._disband(place, x)
            output = prepacked_linear(x.to(self.dtype), self.packed, self.bias)
            pending = _Pending(x, _version(x), output, frozenset())
        taken = pending.taken | {place}
        done = len(taken) == len(self._columns)
        self.finished += done
        self._pending = None if done else _Pending(x, pending.version, pending.output, taken)
        return pending.output[..., self._columns[place]]

    def _disband(self, place: int, x: torch.Tensor) -> torch.Tensor:
        """Give every sibling its own packed weight back; return sibling `place`'s output alone."""
        self._pending = None
        for member in self._members:
            member._packed = prepacked_weight(member.weight)
            member._group = None
        return self._members[place](x)


def group_shared_inputs(model: torch.nn.Module) -> int:
    """A `SharedInputGroup` for each module's `SHARED_INPUT_SIBLINGS` that are all prepacked
    `FrozenLinear`s of one dtype and input width; returns how many groups it formed."""
    groups = 0
    for module in model.modules():
        for names in SHARED_INPUT_SIBLINGS:
            members = [getattr(module, name, None) for name in names]
            frozen = [m for m in members if isinstance(m, FrozenLinear) and m._packed is not None]
            if (
                len(frozen) == len(names)
                and len({(m.weight.dtype, m.in_features) for m in frozen}) == 1
            ):
                SharedInputGroup(frozen)
                groups += 1
    return groups
