"""Export a saved adapter: as a clean PEFT adapter directory, or merged into its base model.

`export_merged` loads a fresh fp32 copy of the base, applies the adapter with
`peft.PeftModel.from_pretrained` and `merge_and_unload`, and saves a plain Hugging Face model
directory (weights, config, tokenizer) that `AutoModelForCausalLM` loads without PEFT. When the
adapter trains the output embedding of a model with tied embeddings, the output embedding is
untied first: merging into the shared matrix would otherwise also change the input embeddings.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from tinker_chief.engine.backend import InvalidRequestError
from tinker_chief.engine.compute import checkpoint_io
from tinker_chief.engine.compute.base_pool import canonical_name, load_frozen_causal_lm
from tinker_chief.models import hf_files, mark_embeddings_untied, materialize_model

_ADAPTER_FILES = (checkpoint_io.ADAPTER_CONFIG, checkpoint_io.ADAPTER_WEIGHTS, checkpoint_io.META)


def _prepare_out(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise InvalidRequestError(f"{out_dir}: exists and is not a directory; expected a new or empty directory")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise InvalidRequestError(f"{out_dir}: output directory exists and is not empty")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file where a parent directory should be, no permission
        raise InvalidRequestError(f"{out_dir}: cannot create the output directory ({exc.strerror})") from None


def export_adapter(adapter_dir: Path, out_dir: Path) -> None:
    """Copy the PEFT adapter files (no optimizer state) into `out_dir`."""
    adapter_dir, out_dir = Path(adapter_dir), Path(out_dir)
    checkpoint_io.read_adapter(adapter_dir, with_optimizer=False)  # validates it is an adapter
    _prepare_out(out_dir)
    for name in _ADAPTER_FILES:
        if (adapter_dir / name).is_file():
            shutil.copy2(adapter_dir / name, out_dir / name)


def _untie_output_embedding(model) -> None:
    output = model.get_output_embeddings()
    if output.weight is model.get_input_embeddings().weight:
        output.weight = torch.nn.Parameter(output.weight.detach().clone(), requires_grad=False)
    mark_embeddings_untied(model.config)


def export_merged(adapter_dir: Path, base_model: str, out_dir: Path) -> None:
    """Write a Hugging Face model directory with the adapter merged into `base_model`."""
    from peft import PeftModel
    from transformers import AutoTokenizer

    adapter_dir, out_dir = Path(adapter_dir), Path(out_dir)
    files = checkpoint_io.read_adapter(adapter_dir, with_optimizer=False)
    _prepare_out(out_dir)  # before the slow load: a bad OUT_DIR fails at once
    base_dir = materialize_model(canonical_name(base_model))
    model = load_frozen_causal_lm(base_dir, "cpu")
    targets = files.config.target_modules or []
    output_name = next(name for name, module in model.named_modules() if module is model.get_output_embeddings())
    if output_name in targets or any(str(t).endswith(output_name) for t in targets):
        _untie_output_embedding(model)
    merged = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    merged.save_pretrained(str(out_dir))
    tokenizer = AutoTokenizer.from_pretrained(str(base_dir), **hf_files.offline())
    tokenizer.save_pretrained(str(out_dir))
