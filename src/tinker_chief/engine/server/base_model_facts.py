"""What the server must know about a base model to validate requests before queuing them.

Vocabulary size, context length, EOS ids (the default stop condition), the KV-cache bytes one
sampled position takes (what sampling memory is budgeted by) and the tokenizer id `get_info`
returns for the SDK's `get_tokenizer()`: the local tokenizer directory when every client runs on
this machine (it loads offline), else a name a client elsewhere loads it by (never a path of this
machine). Facts
come from the backend's `BaseModelInfo` when it lists the model, else from the catalog's
`config.json`; they are computed once per model on the compute thread (materializing a
built-in model may convert it the first time).

The catalog is also where client-given names are checked: `canonical` accepts built-ins, hub
ids in the local cache and the local directories the operator allowed (`LocalModelDirs`);
a client is shown only `public_model_name`s (a directory's alias, never its path). A model of
Tinker's lineup with no weights here is a 404 saying it runs on Tinker's cloud only and what to
do (`CloudOnlyModelError`, raised by `resolve_model`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from tinker_chief.engine.backend import ComputeBackend
from tinker_chief.models import (
    BUILTIN_MODELS,
    LocalModelDirs,
    hf_files,
    list_builtin_models,
    materialize_model,
    public_model_name,
    resolve_model,
)
from tinker_chief.models.hf_cache import hub_ids


@dataclass(frozen=True)
class BaseInfo:
    name: str
    arch: str
    vocab_size: int
    max_context_length: int
    tokenizer_dir: str
    tokenizer_name: str  # what a client on another machine loads the tokenizer by
    eos_tokens: tuple[int, ...]
    kv_bytes_per_token: int


class BaseModelCatalog:
    def __init__(
        self,
        backend: ComputeBackend,
        local_dirs: LocalModelDirs | None = None,
        tokenizer_paths: bool = True,
    ) -> None:
        self._backend = backend
        self._local_dirs = local_dirs or LocalModelDirs()
        # A tokenizer directory helps only a client on this machine (the SDK's offline
        # get_tokenizer); an engine reachable from elsewhere names the tokenizer instead.
        self._tokenizer_paths = tokenizer_paths
        self._infos: dict[str, BaseInfo] = {}
        self._lock = threading.Lock()

    def canonical(self, name: str) -> str:
        """The engine's name for what a client typed; raises ModelNotFoundError listing options."""
        return resolve_model(name, self._local_dirs).name

    def tokenizer_id(self, name: str) -> str | None:
        """`get_info`'s tokenizer_id: the local tokenizer directory for an engine only this machine
        reaches, else the tokenizer's name (`tokenizer_name`)."""
        info = self.cached(name)
        if info is None:
            return None
        return info.tokenizer_dir if self._tokenizer_paths else info.tokenizer_name

    def cached(self, name: str) -> BaseInfo | None:
        with self._lock:
            return self._infos.get(name)

    def info(self, name: str) -> BaseInfo:
        """Facts about a base model (compute thread only: may materialize the model)."""
        canonical = self.canonical(name)
        if (known := self.cached(canonical)) is not None:
            return known
        directory = materialize_model(canonical)
        config = hf_files.read_object(directory, hf_files.CONFIG) or {}
        generation = hf_files.read_object(directory, "generation_config.json") or {}
        backend_info = next((b for b in self._backend.base_models() if b.name == canonical), None)
        info = BaseInfo(
            name=public_model_name(canonical),
            arch=backend_info.arch if backend_info else str(config.get("model_type", "unknown")),
            vocab_size=int(config["vocab_size"]),
            max_context_length=(
                backend_info.max_context_length
                if backend_info
                else int(config.get("max_position_embeddings", 2048))
            ),
            tokenizer_dir=backend_info.tokenizer_dir if backend_info else str(directory),
            tokenizer_name=_tokenizer_name(canonical),
            eos_tokens=_ids(generation.get("eos_token_id")) or _ids(config.get("eos_token_id")),
            kv_bytes_per_token=self._backend.kv_bytes_per_token(canonical),
        )
        with self._lock:
            self._infos[canonical] = info
        return info

    def listing(self) -> list[tuple[str, int | None]]:
        """(name, context length if known) for every built-in and every model the engine loaded."""
        names: dict[str, int | None] = {spec.name: None for spec in list_builtin_models()}
        for info in self._backend.base_models():
            names[public_model_name(info.name)] = info.max_context_length
        with self._lock:
            for loaded in self._infos.values():
                names[loaded.name] = loaded.max_context_length
        return list(names.items())


def _tokenizer_name(canonical: str) -> str:
    """A built-in's id in the Hugging Face cache (`tinker-chief/<name>`: any chief install that
    materialized it has it), a hub id itself, an allowed directory's name (the client needs a
    tokenizer by that name)."""
    if canonical.lower() in BUILTIN_MODELS:
        return hub_ids(canonical)[0]
    return public_model_name(canonical)


def _ids(value: object) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,)
    if isinstance(value, list):
        return tuple(int(v) for v in value)
    return ()
