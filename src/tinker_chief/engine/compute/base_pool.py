"""Frozen base models, loaded once per engine and shared by every adapter on them.

`BasePool.get(name)` resolves a model name through `tinker_chief.models` (so built-ins, local
HF directories and cached hub ids all work), loads it once on the backend's device (fp32, or
its linear layers in the autocast dtype when the backend computes in bf16), freezes it, and
keeps the `LoadedBase` (model, tokenizer, limits). The PEFT wrapper that holds the LoRA
adapters of every training client on this base lives in `adapters.AdapterHost`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from tinker_chief.engine.backend import BaseModelInfo, NotFoundError
from tinker_chief.engine.compute.attention import use_grouped_decode_attention
from tinker_chief.engine.compute.devices import FP32_ONEDNN, Precision
from tinker_chief.engine.compute.frozen_linear import use_compute_dtype_linears
from tinker_chief.errors import ModelNotFoundError
from tinker_chief.models import (
    hf_files,
    list_builtin_models,
    materialize_model,
    resolve_model,
    text_config,
)

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase


@dataclass
class LoadedBase:
    """A frozen causal LM plus what requests are validated against."""

    info: BaseModelInfo
    model: PreTrainedModel  # a causal LM; PEFT layers get injected in place
    local_dir: Path
    vocab_size: int
    _tokenizer: PreTrainedTokenizerBase | None = field(default=None, repr=False)

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        """Loaded on first use: only stop-string checks need it."""
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            directory = str(self.local_dir)
            self._tokenizer = AutoTokenizer.from_pretrained(directory, **hf_files.offline())
        return self._tokenizer


def canonical_name(name: str) -> str:
    """The catalog's canonical spelling of a model name, or NotFoundError listing the options."""
    try:
        return resolve_model(name).name
    except ModelNotFoundError as error:
        raise NotFoundError(str(error)) from None


def model_config(local_dir: Path) -> PretrainedConfig:
    """The model's `transformers` config (no weights are read)."""
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(str(local_dir), **hf_files.offline())  # runs no model code


def model_info(name: str, local_dir: Path) -> BaseModelInfo:
    config = model_config(local_dir)
    language = text_config(config)
    return BaseModelInfo(
        name=name,
        max_context_length=int(getattr(language, "max_position_embeddings", 2048)),
        tokenizer_dir=str(local_dir),
        arch=str(getattr(config, "model_type", "unknown")),
    )


def load_frozen_causal_lm(
    local_dir: Path,
    device: str,
    compute_dtype: torch.dtype | None = None,
    *,
    fp32_onednn: bool = False,
) -> PreTrainedModel:
    """Eval mode, no base gradients, decode attention that reads the KV cache without repeating
    it per query head, and fp32 weights; with a `compute_dtype` (the autocast dtype) the linear
    layers hold their weights in it (`frozen_linear`: the same bits autocast computes, without
    re-casting every weight on every call). `fp32_onednn`: in fp32 on CPU the linear layers run
    oneDNN on prepacked weights (what the precision probe picked) instead of `F.linear`."""
    from transformers import AutoModelForCausalLM

    load = AutoModelForCausalLM.from_pretrained
    model = load(str(local_dir), dtype=torch.float32, **hf_files.offline())  # runs no model code
    model.to(device).eval()  # type: ignore[arg-type]  # transformers types `.to` through a wrapper that takes the model
    model.requires_grad_(False)
    use_grouped_decode_attention(model)
    if compute_dtype is None:
        use_compute_dtype_linears(model, torch.float32, prepack=fp32_onednn)
    else:
        use_compute_dtype_linears(model, compute_dtype)
    return model


class BasePool:
    """Each base model loaded at most once per backend."""

    def __init__(self, precision: Precision) -> None:
        self.precision = precision
        self._loaded: dict[str, LoadedBase] = {}

    def get(self, name: str) -> LoadedBase:
        canonical = canonical_name(name)
        if canonical not in self._loaded:
            spec = resolve_model(canonical)
            local_dir = materialize_model(spec)
            precision = self.precision
            model = load_frozen_causal_lm(
                local_dir,
                precision.device,
                precision.autocast_dtype,
                fp32_onednn=precision.fp32_kernel == FP32_ONEDNN,
            )
            vocab = int(model.get_output_embeddings().weight.shape[0])
            self._loaded[canonical] = LoadedBase(
                model_info(canonical, local_dir), model, local_dir, vocab
            )
        return self._loaded[canonical]

    def config(self, name: str) -> PretrainedConfig:
        """A base model's config: the loaded model's, else read from its directory."""
        canonical = canonical_name(name)
        if canonical in self._loaded:
            return self._loaded[canonical].model.config
        return model_config(materialize_model(resolve_model(canonical)))

    def infos(self) -> list[BaseModelInfo]:
        """Built-in models (materialized on first call) plus any other loaded base."""
        infos = {}
        for spec in list_builtin_models():
            infos[spec.name] = model_info(spec.name, materialize_model(spec))
        for name, base in self._loaded.items():
            infos[name] = base.info
        return list(infos.values())
