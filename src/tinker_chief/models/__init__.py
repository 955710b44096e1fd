"""The model catalog that the engine, planner, trainer and evals all share.

It owns the names users type (`SmolLM2-135M-Instruct-Q4_1`, `tiny-random-llama`, a local
Hugging Face directory, or a hub id), turns each into a local Hugging Face model
directory (dequantizing the embedded GGUF once, building the tiny test model once, both cached
under `CHIEF_CACHE_DIR`, and linked into the local Hugging Face cache as `tinker-chief/<name>`
and `<name>` so `transformers` loads them by name), and knows each model's tokenizer, config and
chat renderer. Tinker's lineup (`lineup.py`, from the cookbook) resolves too, as a `cloud` model
with no local weights: planned from the cookbook's numbers, trained with `--backend tinker`;
so does any other hub id without weights here, planned from its config.json and tokenizer.
Nothing here talks to the network except `hub.py`, which fetches a cloud model's config and
tokenizer (never weights) into the Hugging Face cache when online.
"""

from tinker_chief.models.catalog import (
    BUILTIN_MODELS,
    DEFAULT_MODEL,
    TINY_MODEL,
    CloudOnlyModelError,
    LocalModelDirs,
    ModelSpec,
    cache_dir,
    cloud_only_message,
    list_builtin_models,
    load_model_config,
    load_tokenizer,
    local_model_dirs,
    mark_embeddings_untied,
    materialize_model,
    model_files,
    public_model_name,
    resolve_model,
    text_config,
)
from tinker_chief.models.renderers import (
    RendererChoice,
    chosen_renderer_name,
    conversation_datum,
    cookbook_messages,
    get_renderer,
    renderer_name_for,
)

__all__ = [
    "BUILTIN_MODELS",
    "DEFAULT_MODEL",
    "TINY_MODEL",
    "CloudOnlyModelError",
    "LocalModelDirs",
    "ModelSpec",
    "RendererChoice",
    "cache_dir",
    "chosen_renderer_name",
    "cloud_only_message",
    "conversation_datum",
    "cookbook_messages",
    "get_renderer",
    "list_builtin_models",
    "load_model_config",
    "load_tokenizer",
    "local_model_dirs",
    "mark_embeddings_untied",
    "materialize_model",
    "model_files",
    "public_model_name",
    "renderer_name_for",
    "resolve_model",
    "text_config",
]
