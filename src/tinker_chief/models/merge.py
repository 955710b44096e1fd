"""A LoRA adapter merged into its base: a plain Hugging Face model directory, no PEFT needed.

Loads a fresh fp32 copy of the base (`base_dir`), applies the adapter with
`peft.PeftModel.from_pretrained` and `merge_and_unload`, and saves the merged weights
(safetensors, sharded past `max_shard_size`), config, generation config and tokenizer with its
chat template. When the adapter trains the output embedding of a model with tied embeddings
(SmolLM2), the output embedding is untied first: merging into the shared matrix would also change
the input embeddings (PEFT warns of exactly that), so the merged model keeps the base's input
embeddings and gets an output embedding of its own (`tie_word_embeddings` false). Used by the
engine's in-process export and by `chief export --merged`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from tinker_chief.models import hf_files
from tinker_chief.models.catalog import mark_embeddings_untied

if TYPE_CHECKING:
    from peft import PeftConfig
    from transformers import PreTrainedModel


def trains_output_embedding(model: PreTrainedModel, config: PeftConfig) -> bool:
    """Whether a PEFT LoRA config puts LoRA on the model's output embedding: as a module
    (`target_modules`) or as its weight (`target_parameters`)."""
    output = model.get_output_embeddings()
    name = next(n for n, module in model.named_modules() if module is output)
    modules = getattr(config, "target_modules", None)
    targets = [modules] if isinstance(modules, str) else list(modules or [])
    targets += [
        str(p).removesuffix(".weight") for p in getattr(config, "target_parameters", None) or []
    ]
    return any(
        t == name or str(t).endswith(f".{name}") or str(t) == name.rsplit(".", 1)[-1]
        for t in targets
    )


def untie_output_embedding(model: PreTrainedModel) -> None:
    """Give a tied output embedding its own copy of the weight, and say so in the config."""
    import torch

    output = model.get_output_embeddings()
    weight = output.get_parameter("weight")
    if weight is model.get_input_embeddings().get_parameter("weight"):
        output.weight = torch.nn.Parameter(weight.detach().clone(), requires_grad=False)
    mark_embeddings_untied(model.config)


def merge_adapter(
    base_dir: Path, adapter_dir: Path, out_dir: Path, *, max_shard_size: str = "5GB"
) -> None:
    """Write `out_dir` (existing, empty): the base in `base_dir` with the adapter in `adapter_dir`
    merged in, as a Hugging Face model directory with the base's tokenizer."""
    import torch
    from peft import PeftConfig, PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(
        str(base_dir), dtype=torch.float32, **hf_files.offline()
    )
    model.eval().requires_grad_(False)
    if trains_output_embedding(model, PeftConfig.from_pretrained(str(adapter_dir))):
        untie_output_embedding(model)
    merged = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    merged.save_pretrained(str(out_dir), max_shard_size=max_shard_size)
    AutoTokenizer.from_pretrained(str(base_dir), **hf_files.offline()).save_pretrained(str(out_dir))
