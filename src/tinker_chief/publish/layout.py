"""The two export layouts, written from the adapter files a backend sent down.

`adapter` (default): a standard PEFT adapter directory that loads with
`PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(BASE), DIR)` and nothing of
chief: `adapter_config.json` naming the base by its hub id (`BaseModel.hub_id`, never a path of
this machine), `adapter_model.safetensors`, and the base's tokenizer with its chat template.
On a base with tied embeddings, a LoRA on the output embedding is written as a LoRA on its
weight (`target_parameters: ["lm_head.weight"]`, the same tensors and the same math): PEFT
then loads it without its tied-layer warning, and the input embeddings stay the base's.
`merged`: the adapter merged into the base's weights (`models.merge`), a complete Hugging Face
model directory for servers that take no adapters.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tinker_chief.errors import ExportError
from tinker_chief.files import read_json_object, sha256_file

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"


@dataclass(frozen=True)
class BaseModel:
    """A version's base model as an export names and loads it."""

    name: str  # as the registry records it
    hub_id: str | None  # what adapter_config.json names; None: no hub id (a local directory)
    card_id: str  # the model card's `base_model`: the hub repository it comes from
    weights_dir: Path | None  # its weights on this machine, None for a cloud-only model
    tied_embeddings: bool
    model_type: str


def resolve_base(name: str) -> BaseModel:
    """Where the base's weights are, and the hub id that loads them elsewhere."""
    from transformers import AutoConfig

    from tinker_chief.models import (
        hf_files,
        materialize_model,
        model_files,
        resolve_model,
        text_config,
    )
    from tinker_chief.models.hf_cache import NAMESPACE

    spec = resolve_model(name)
    if spec.source in (
        "gguf",
        "tiny",
    ):  # built-ins: chief registers them in the HF cache under this id
        hub_id: str | None = f"{NAMESPACE}/{spec.name}"
    elif spec.source == "local":
        hub_id = None
    else:
        hub_id = spec.name
    weights = materialize_model(spec) if spec.source != "cloud" else None
    config = AutoConfig.from_pretrained(
        str(weights or model_files(spec.name)), **hf_files.offline()
    )
    tied = bool(getattr(text_config(config), "tie_word_embeddings", False))
    return BaseModel(
        spec.name,
        hub_id,
        spec.upstream or hub_id or spec.name,
        weights,
        tied,
        str(config.model_type),
    )


def write_adapter_dir(downloaded: Path, out: Path, base: BaseModel) -> None:
    """The standard PEFT directory in `out` (existing, empty) from a backend's adapter files."""
    if base.hub_id is None:
        raise ExportError(
            f"the base model is the local directory {base.name}, which has no hub id an adapter "
            "could name; export with --merged (a complete model)"
        )
    for name in (ADAPTER_CONFIG, ADAPTER_WEIGHTS):
        if not (downloaded / name).is_file():
            sent = ", ".join(sorted(p.name for p in downloaded.iterdir())) or "nothing"
            raise ExportError(
                f"the backend's export has no {name} (it sent {sent}); expected a PEFT adapter"
            )
    config = read_json_object(downloaded / ADAPTER_CONFIG, error=ExportError)
    if str(config.get("peft_type", "")).upper() != "LORA":
        raise ExportError(
            f"{ADAPTER_CONFIG}: peft_type is {config.get('peft_type')!r}; expected LORA"
        )
    (out / ADAPTER_CONFIG).write_text(
        json.dumps(standard_config(config, base), indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    shutil.copyfile(downloaded / ADAPTER_WEIGHTS, out / ADAPTER_WEIGHTS)
    _save_tokenizer(base, out)


def standard_config(config: Mapping[str, object], base: BaseModel) -> dict[str, object]:
    """The backend's adapter config, naming the base by hub id; on tied embeddings a LoRA on the
    output embedding moves from `target_modules` to `target_parameters` (see the module doc)."""
    out = {**config, "base_model_name_or_path": base.hub_id, "inference_mode": True}
    targets = out.get("target_modules")
    if base.tied_embeddings and isinstance(targets, list):
        output = [t for t in targets if str(t).rsplit(".", 1)[-1] == "lm_head"]
        if output:
            existing = out.get("target_parameters") or []
            if not isinstance(existing, list):
                raise ExportError(
                    f"{ADAPTER_CONFIG}: target_parameters is {existing!r}; expected a list of "
                    "parameter names"
                )
            out["target_modules"] = [t for t in targets if t not in output]
            out["target_parameters"] = sorted({*existing, *(f"{t}.weight" for t in output)})
    return out


def write_merged_dir(adapter_dir: Path, out: Path, base: BaseModel) -> None:
    """The merged model in `out` (existing, empty) from the standard adapter in `adapter_dir`."""
    from tinker_chief.models.merge import merge_adapter

    if base.weights_dir is None:
        raise ExportError(
            f"--merged needs the weights of {base.name}, which are not on this machine (it runs on "
            "Tinker's cloud); put them in the Hugging Face cache (`hf download "
            f"{base.name}`) or export the adapter without --merged"
        )
    merge_adapter(base.weights_dir, adapter_dir, out)


def weight_digests(directory: Path) -> dict[str, str]:
    """sha256 of each weight file (`*.safetensors`) in the export, by name."""
    return {p.name: sha256_file(p) for p in sorted(directory.glob("*.safetensors"))}


def _save_tokenizer(base: BaseModel, out: Path) -> None:
    from tinker_chief.models import load_tokenizer

    load_tokenizer(base.name).save_pretrained(str(out))
