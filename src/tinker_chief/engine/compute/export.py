"""Export a saved adapter: as a clean PEFT adapter directory, or merged into its base model.

`export_merged` is `models.merge.merge_adapter` (fp32, tied output embeddings untied before the
merge) on a checkpoint directory of the engine's own: a plain Hugging Face model directory
(weights, config, tokenizer) that `AutoModelForCausalLM` loads without PEFT. In-process use only
(tests, benchmarks); users export registry versions with `chief export`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tinker_chief.engine.backend import InvalidRequestError
from tinker_chief.engine.compute import checkpoint_io
from tinker_chief.engine.compute.base_pool import canonical_name
from tinker_chief.models import materialize_model
from tinker_chief.models.merge import merge_adapter

_ADAPTER_FILES = (checkpoint_io.ADAPTER_CONFIG, checkpoint_io.ADAPTER_WEIGHTS, checkpoint_io.META)


def _prepare_out(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise InvalidRequestError(
            f"{out_dir}: exists and is not a directory; expected a new or empty directory"
        )
    if out_dir.exists() and any(out_dir.iterdir()):
        raise InvalidRequestError(f"{out_dir}: output directory exists and is not empty")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file where a parent directory should be, no permission
        raise InvalidRequestError(
            f"{out_dir}: cannot create the output directory ({exc.strerror})"
        ) from None


def export_adapter(adapter_dir: Path, out_dir: Path) -> None:
    """Copy the PEFT adapter files (no optimizer state) into `out_dir`."""
    adapter_dir, out_dir = Path(adapter_dir), Path(out_dir)
    checkpoint_io.read_adapter(adapter_dir, with_optimizer=False)  # validates it is an adapter
    _prepare_out(out_dir)
    for name in _ADAPTER_FILES:
        if (adapter_dir / name).is_file():
            shutil.copy2(adapter_dir / name, out_dir / name)


def export_merged(adapter_dir: Path, base_model: str, out_dir: Path) -> None:
    """Write a Hugging Face model directory with the adapter merged into `base_model`."""
    adapter_dir, out_dir = Path(adapter_dir), Path(out_dir)
    checkpoint_io.read_adapter(adapter_dir, with_optimizer=False)  # validates it is an adapter
    _prepare_out(out_dir)  # before the slow load: a bad OUT_DIR fails at once
    merge_adapter(materialize_model(canonical_name(base_model)), adapter_dir, out_dir)
