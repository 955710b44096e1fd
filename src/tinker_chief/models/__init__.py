"""The model catalog that the engine, planner, trainer and evals all share.

It owns the names users type (`SmolLM2-135M-Instruct-Q4_1`, `tiny-random-llama`, a local
Hugging Face directory, or a cached hub id), turns each into a local Hugging Face model
directory (dequantizing the embedded GGUF once, building the tiny test model once, both cached
under `CHIEF_CACHE_DIR`, and linked into the local Hugging Face cache as `tinker-chief/<name>`
and `<name>` so `transformers` loads them by name), and knows each model's tokenizer, config and
chat renderer. Nothing here talks to the network: a hub id resolves only if it is already in the
local cache.
"""

from tinker_chief.models.catalog import (
    BUILTIN_MODELS,
    DEFAULT_MODEL,
    TINY_MODEL,
    LocalModelDirs,
    ModelSpec,
    cache_dir,
    list_builtin_models,
    load_model_config,
    load_tokenizer,
    local_model_dirs,
    mark_embeddings_untied,
    materialize_model,
    public_model_name,
    resolve_model,
    text_config,
)
from tinker_chief.models.renderers import get_renderer, renderer_name_for

__all__ = [
    "BUILTIN_MODELS",
    "DEFAULT_MODEL",
    "TINY_MODEL",
    "LocalModelDirs",
    "ModelSpec",
    "cache_dir",
    "get_renderer",
    "list_builtin_models",
    "load_model_config",
    "load_tokenizer",
    "local_model_dirs",
    "mark_embeddings_untied",
    "materialize_model",
    "public_model_name",
    "renderer_name_for",
    "resolve_model",
    "text_config",
]
