"""LoRA adapters on a shared frozen base: which layers they target, and the PEFT host.

`lora_config_for(model, spec, base_dir)` finds the layers generically from module names and
types: every `nn.Linear` under an attention block (train_attn) or an MLP/MoE block (train_mlp),
3-D expert weight tensors of fused MoE layers (as PEFT `target_parameters`), and the output
embedding (train_unembed). `AdapterHost` is one `peft.PeftModel` per base holding many named
adapters (one per training client, plus sampler snapshots); only the active one takes part in a
forward, or, inside `per_row`, each client's on its own rows of a shared batch, so clients never
see each other's weights. Adapter names are internal slot names
("s0", "s1", ...) because PEFT forbids dots and some ids the server uses contain them.
"""

from __future__ import annotations

import contextlib
import functools
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from peft.tuners.lora import Linear as LoraLinear
from peft.tuners.lora import LoraLayer
from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict

from tinker_chief.engine.backend import InvalidRequestError, LoraSettings
from tinker_chief.models import text_config

if TYPE_CHECKING:
    from transformers import PreTrainedModel

_ATTN_HINTS = ("attn", "attention")
_MLP_HINTS = ("mlp", "feed_forward", "ffn", "experts", "moe")
_ROUTER_LEAVES = ("router", "gate")  # MoE routers score experts; Tinker does not adapt them


def _block_kind(module_name: str) -> str | None:
    """'attn' or 'mlp' from the nearest enclosing block name, else None."""
    for part in reversed(module_name.split(".")[:-1]):
        lowered = part.lower()
        if any(hint in lowered for hint in _ATTN_HINTS):
            return "attn"
        if any(hint in lowered for hint in _MLP_HINTS):
            return "mlp"
    return None


def _is_moe(model: PreTrainedModel) -> bool:
    config = text_config(model.config)
    return any(
        getattr(config, key, None)
        for key in ("num_experts", "num_local_experts", "n_routed_experts")
    )


@dataclass(frozen=True)
class LoraLayout:
    """What LoRA can adapt in a model, scanned once before any adapter is injected."""

    linears: tuple[tuple[str, str | None], ...]  # (full name, "attn" | "mlp" | None)
    output_name: str
    expert_params: tuple[str, ...]  # fused 3-D MoE weights, as PEFT target_parameters suffixes


def scan_layout(model: PreTrainedModel) -> LoraLayout:
    output = model.get_output_embeddings()
    moe = _is_moe(model)
    linears, experts, output_name = [], set(), "lm_head"
    for name, module in model.named_modules():
        if module is output:
            output_name = name
            continue
        if isinstance(module, torch.nn.Linear):
            kind = _block_kind(name)
            if kind == "mlp" and moe and name.rsplit(".", 1)[-1] in _ROUTER_LEAVES:
                kind = None
            linears.append((name, kind))
        elif _block_kind(name + ".x") == "mlp":
            for param_name, param in module.named_parameters(recurse=False):
                if param.dim() == 3:
                    experts.add(f"{name.rsplit('.', 1)[-1]}.{param_name}")
    return LoraLayout(tuple(linears), output_name, tuple(sorted(experts)))


def lora_config_for(layout: LoraLayout, spec: LoraSettings, base_dir: Path) -> LoraConfig:
    """A PEFT LoraConfig targeting what `spec` asks for on this particular model."""
    if spec.rank < 1:
        raise InvalidRequestError(f"LoRA rank must be a positive integer, got {spec.rank}")
    kinds = {kind for kind, on in (("attn", spec.train_attn), ("mlp", spec.train_mlp)) if on}
    if not kinds:
        raise InvalidRequestError("at least one of train_mlp and train_attn must be true")
    selected = [name for name, kind in layout.linears if kind in kinds]
    unselected = [name for name, kind in layout.linears if kind not in kinds]
    leaves = sorted({name.rsplit(".", 1)[-1] for name in selected})
    # Leaf names are the readable form PEFT users expect; fall back to full names when a leaf
    # name also names a layer that must stay untouched (e.g. "dense" in both blocks).
    clash = {name.rsplit(".", 1)[-1] for name in unselected} & set(leaves)
    targets = sorted(selected) if clash else leaves
    if spec.train_unembed:
        targets.append(layout.output_name)
    expert_params = list(layout.expert_params) if spec.train_mlp else []
    if not targets and not expert_params:
        raise InvalidRequestError(
            "this model has no layers that LoRA can adapt for the requested spec"
        )
    return LoraConfig(
        r=spec.rank,
        lora_alpha=spec.alpha,
        lora_dropout=0.0,
        bias="none",
        task_type="CAUSAL_LM",
        target_modules=targets,
        target_parameters=expert_params or None,
        base_model_name_or_path=str(base_dir),
    )


class AdapterHost:
    """The PEFT wrapper of one base model, holding every adapter on it."""

    def __init__(self, causal_lm: PreTrainedModel) -> None:
        self.causal_lm = causal_lm  # PEFT injects its layers into this very object
        self.layout = scan_layout(causal_lm)
        self.peft: PeftModel | None = None
        self._next = 0

    def new_slot(self) -> str:
        self._next += 1
        return f"s{self._next}"

    def add(self, slot: str, config: LoraConfig, seed: int | None) -> None:
        """Inject a fresh adapter; with a seed its initial weights are reproducible."""
        with _seeded(seed), warnings.catch_warnings():
            # PEFT warns when the output embedding is tied to the input one; our LoRA on the
            # output embedding is deliberately separate (export unties before merging).
            warnings.filterwarnings("ignore", message=".*tie_word_embeddings.*")
            if self.peft is None:
                self.peft = get_peft_model(self.causal_lm, config, adapter_name=slot)
            else:
                self.peft.add_adapter(slot, config)
        self.activate(slot)

    def activate(self, slot: str, inference: bool = False) -> None:
        """Make `slot` the adapter every forward uses, trainable unless `inference` (a sampler).
        Through `PeftModel.set_adapter`, so PEFT's own record of the active adapter follows:
        `disable_adapter` (base-only sampling) reads it, and a stale name left by deleting the
        last adapter raised KeyError there."""
        assert self.peft is not None
        self.peft.set_adapter(slot, inference_mode=inference)

    @contextlib.contextmanager
    def base_only(self) -> Iterator[None]:
        """Run the plain base model even while adapters exist."""
        if self.peft is None:
            yield
            return
        with self.peft.disable_adapter():
            yield

    def mixable(self, slot: str) -> bool:
        """Whether `slot` can share a forward with other adapters (`per_row`): plain LoRA, and
        only on linear layers (PEFT's wrappers of fused MoE expert weights are left out)."""
        assert self.peft is not None
        layers = [module for module in self.peft.modules() if isinstance(module, LoraLayer)]
        return not self.config(slot).use_dora and all(
            isinstance(module, LoraLinear) for module in layers
        )

    @contextlib.contextmanager
    def per_row(self, spans: list[tuple[str, int]]) -> Iterator[RowAdapters]:
        """Forwards inside run consecutive batch rows through their own adapters: `spans` is
        (slot, rows) in batch order. Each LoRA layer runs its base layer once for all rows and
        each adapter's A/B on its own rows only, so an adapter's gradient comes from its rows
        alone. (PEFT's `adapter_names` does the same with index lists, whose backward is a
        scatter-add: slower on CPU than running the adapters one after the other.)"""
        assert self.peft is not None
        rows = RowAdapters(spans)
        layers = [module for module in self.peft.modules() if isinstance(module, LoraLinear)]
        for module in layers:
            # An instance attribute shadows the class's forward until deleted below.
            module.forward = functools.partial(rows.forward, module)  # type: ignore[method-assign]
        try:
            yield rows
        finally:
            for module in layers:
                del module.forward

    def parameters(self, slot: str) -> dict[str, torch.nn.Parameter]:
        """The adapter's trainable tensors by their PEFT name, in a stable order."""
        assert self.peft is not None
        marker = f".{slot}."
        return {name: param for name, param in self.peft.named_parameters() if marker in f"{name}."}

    def state_dict(self, slot: str) -> dict[str, torch.Tensor]:
        """Standard PEFT adapter keys (no slot name), as saved in adapter_model.safetensors."""
        state = get_peft_model_state_dict(self.peft, adapter_name=slot, save_embedding_layers=False)
        return {
            key: value.detach().to("cpu", torch.float32).clone() for key, value in state.items()
        }

    def load_state_dict(self, slot: str, state: dict[str, torch.Tensor]) -> None:
        result = set_peft_model_state_dict(self.peft, state, adapter_name=slot)
        missing = [
            key
            for key in getattr(result, "missing_keys", [])
            if f".{slot}." in f"{key}." and "lora_" in key
        ]
        unexpected = list(getattr(result, "unexpected_keys", []))
        if missing or unexpected:
            raise InvalidRequestError(
                f"adapter weights do not fit this model: missing {missing[:3]}, "
                f"unexpected {unexpected[:3]}"
            )

    def config(self, slot: str) -> LoraConfig:
        assert self.peft is not None
        # Slots are only ever made from a LoraConfig.
        return cast(LoraConfig, self.peft.peft_config[slot])

    def remove(self, slot: str) -> None:
        if self.peft is not None and slot in self.peft.peft_config:
            self.peft.delete_adapter(slot)


class RowAdapters:
    """Which adapter each row of the next LoRA layer call uses: the spans over batch rows (the
    decoder), or one slot for every row (`only`: one call's rows, e.g. its output projection)."""

    def __init__(self, spans: list[tuple[str, int]]) -> None:
        self.spans = spans
        self._only: str | None = None

    def only(self, slot: str | None) -> None:
        self._only = slot

    def forward(self, layer: LoraLinear, x: torch.Tensor) -> torch.Tensor:
        """PEFT's `lora.Linear.forward` for plain LoRA, one adapter per span of rows."""
        result = layer.base_layer(x)
        if self._only is not None:
            return _plus_lora(layer, self._only, x, result)
        sizes = [rows for _, rows in self.spans]
        pieces = [
            _plus_lora(layer, slot, part, out)
            for (slot, _), part, out in zip(
                self.spans, x.split(sizes), result.split(sizes), strict=True
            )
        ]
        return torch.cat(pieces)


def _plus_lora(layer: LoraLinear, slot: str, x: torch.Tensor, result: torch.Tensor) -> torch.Tensor:
    if slot not in layer.lora_A:
        return result
    lora_a, lora_b = layer.lora_A[slot], layer.lora_B[slot]
    weight = cast(torch.Tensor, lora_a.weight)  # PEFT types its ModuleDict entries as plain Modules
    update = lora_b(lora_a(layer.lora_dropout[slot](x.to(weight.dtype)))) * layer.scaling[slot]
    return result + update.to(result.dtype)


@contextlib.contextmanager
def _seeded(seed: int | None) -> Iterator[None]:
    if seed is None:
        yield
        return
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def slot_free_key(key: str, slot: str) -> str:
    """PEFT parameter name without the adapter name (used as a stable optimizer-state key)."""
    return re.sub(rf"\.{re.escape(slot)}(?=\.|$)", "", key)
