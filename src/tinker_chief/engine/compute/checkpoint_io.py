"""Checkpoint directories: a standard PEFT adapter plus our metadata and optimizer state.

Layout of a directory written here:
- `adapter_config.json` + `adapter_model.safetensors`: exactly what `PeftModel.save_pretrained`
  writes for one adapter, so `peft.PeftModel.from_pretrained(base, dir)` loads it;
- `chief_adapter.json`: base model name and the LoRA spec the client asked for (Tinker's wire
  `LoraConfig` has fields PEFT's config does not, such as `seed` and `train_unembed`);
- `optimizer.safetensors` (training states only): AdamW step/moments per LoRA tensor.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from peft import LoraConfig
from safetensors.torch import load_file, save_file

from tinker_chief.engine.backend import InvalidRequestError, LoraSettings, NotFoundError

ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
META = "chief_adapter.json"
OPTIMIZER = "optimizer.safetensors"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class AdapterFiles:
    """A saved adapter read back from disk."""

    base_model: str
    spec: LoraSettings
    config: LoraConfig
    weights: dict[str, torch.Tensor]
    optimizer: dict[str, torch.Tensor] | None


def write_adapter(
    directory: Path,
    base_model: str,
    spec: LoraSettings,
    config: LoraConfig,
    weights: dict[str, torch.Tensor],
    optimizer: dict[str, torch.Tensor] | None = None,
) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(str(directory))
    save_file(weights, str(directory / ADAPTER_WEIGHTS), metadata={"format": "pt"})
    meta = {
        "format_version": FORMAT_VERSION,
        "base_model": base_model,
        "lora": asdict(spec),
        "has_optimizer_state": optimizer is not None,
    }
    (directory / META).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    if optimizer is not None:
        save_file(optimizer, str(directory / OPTIMIZER))


def read_adapter(directory: Path, with_optimizer: bool) -> AdapterFiles:
    directory = Path(directory)
    for name in (ADAPTER_CONFIG, ADAPTER_WEIGHTS):
        if not (directory / name).is_file():
            raise NotFoundError(f"{directory}: not an adapter checkpoint (no {name})")
    config = LoraConfig.from_pretrained(str(directory))
    config.inference_mode = False
    base_model, spec = _read_meta(directory, config)
    optimizer = None
    if with_optimizer:
        if not (directory / OPTIMIZER).is_file():
            raise InvalidRequestError(
                f"{directory}: this checkpoint has no optimizer state (saved weights only)"
            )
        optimizer = load_file(str(directory / OPTIMIZER))
    return AdapterFiles(
        base_model, spec, config, load_file(str(directory / ADAPTER_WEIGHTS)), optimizer
    )


def _read_meta(directory: Path, config: LoraConfig) -> tuple[str, LoraSettings]:
    """Our metadata if present; otherwise infer from a plain PEFT adapter's config."""
    path = directory / META
    if path.is_file():
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
            return str(meta["base_model"]), LoraSettings(**meta["lora"])
        except (ValueError, KeyError, TypeError) as error:
            raise InvalidRequestError(f"{path}: unreadable checkpoint metadata ({error})") from None
    # A foreign PEFT adapter: its config's target_modules are what gets loaded; the spec's
    # train_* flags are only informational here, so the defaults stand in for them.
    spec = LoraSettings(rank=int(config.r), alpha=int(config.lora_alpha))
    if not config.base_model_name_or_path:
        raise InvalidRequestError(
            f"{directory / ADAPTER_CONFIG}: base_model_name_or_path is not set"
        )
    return str(config.base_model_name_or_path), spec
