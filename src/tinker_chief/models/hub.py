"""A hub model's config and tokenizer, never its weights: from the local Hugging Face cache, or
fetched from the hub into it.

Planning a model that has no weights here needs only its `config.json` (LoRA counts, learning
rate) and its tokenizer files (token counts, chat template). `hub_files(repo_id)` returns the
cache snapshot that holds them: straight from the cache when it has them (no network), else,
online, `fetch` asks the hub for the repo's file list (`/api/models/<id>`) and downloads the
wanted files it has (`hf_hub_download`, into the normal cache, `HF_HUB_CACHE`). Offline
(`HF_HUB_OFFLINE=1`) or with the hub unreachable, a missing file is one `HubFilesMissingError`
naming the files and `chief models fetch ID`, the command that fetches them. `WANTED` lists
every file ever downloaded: weights (`*.safetensors`, `*.bin`, ...) are not among them.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from tinker_chief.errors import ModelNotFoundError

T = TypeVar("T")
CONFIG = "config.json"
# Without these a plan has no numbers: the config, the tokenizer's settings (class, chat
# template) and one vocabulary file, whichever of the three kinds the repo has.
REQUIRED = (CONFIG, "tokenizer_config.json")
VOCABULARY = ("tokenizer.json", "tokenizer.model", "vocab.json")
WANTED = (
    *REQUIRED,
    *VOCABULARY,
    "special_tokens_map.json",
    "merges.txt",
    "added_tokens.json",
    "chat_template.jinja",
    "chat_template.json",
    "generation_config.json",
)

OFFLINE = "the hub is off (HF_HUB_OFFLINE=1)"
# Repos whose files this process downloaded: their plans say the tokenizer came from the hub.
_fetched: set[str] = set()


class HubFilesMissingError(ModelNotFoundError):
    """A hub model's config or tokenizer is not in the local cache and cannot be fetched now."""


@dataclass(frozen=True)
class HubFiles:
    repo_id: str
    directory: Path  # the cache snapshot holding the files
    fetched: bool  # downloaded by this process (else found in the cache)
    names: tuple[str, ...]  # the files of WANTED that are there


def fetch_command(repo_id: str) -> str:
    return f"chief models fetch {repo_id}"


def endpoint() -> str:
    """The hub's address (`HF_ENDPOINT`, else huggingface.co)."""
    from huggingface_hub import constants

    return constants.ENDPOINT


def is_repo_id(name: str) -> bool:
    """Whether `name` is spelled like a hub model id (`org/name`)."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if name.count("/") != 1:
        return False
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def hub_files(repo_id: str) -> HubFiles:
    """The config and tokenizer of `repo_id`: from the cache when complete, else fetched when online."""
    found = _cached(repo_id)
    if not missing(found):
        return HubFiles(repo_id, found[CONFIG].parent, repo_id in _fetched, tuple(found))
    from huggingface_hub import constants

    if constants.is_offline_mode():
        raise HubFilesMissingError(_unavailable_message(repo_id, OFFLINE))
    return fetch(repo_id)


def fetch(repo_id: str, progress: Callable[[str], None] | None = None) -> HubFiles:
    """Download `repo_id`'s config and tokenizer files (never weights) into the HF cache.

    Asks the hub even when the cache has them, so a changed file is refreshed. `progress` gets
    one line when the hub is asked and one per file before it is downloaded.
    """
    from huggingface_hub import HfApi, constants

    if constants.is_offline_mode():
        raise HubFilesMissingError(_unavailable_message(repo_id, OFFLINE))
    if progress is not None:
        progress(f"fetching {repo_id}'s config and tokenizer from {endpoint()} (no weights)")
    info = _hub_call(repo_id, lambda: HfApi().model_info(repo_id))
    names = [sibling.rfilename for sibling in info.siblings or () if sibling.rfilename in WANTED]
    absent = missing(names)
    if absent:
        raise ModelNotFoundError(
            f"{repo_id} on the Hugging Face hub has no {', '.join(absent)}: chief plans a "
            "model from its config.json and tokenizer files"
        )
    paths = {}
    for index, name in enumerate(names, 1):
        if progress is not None:
            progress(f"  {name} ({index}/{len(names)})")
        paths[name] = Path(_hub_call(repo_id, partial(_download, repo_id, name)))
    _fetched.add(repo_id)
    return HubFiles(repo_id, paths[CONFIG].parent, True, tuple(paths))


def missing(found: Collection[str]) -> list[str]:
    """The required files not in `found` (a missing vocabulary is named as tokenizer.json)."""
    absent = [name for name in REQUIRED if name not in found]
    return absent + ([] if any(name in found for name in VOCABULARY) else [VOCABULARY[0]])


def _cached(repo_id: str) -> dict[str, Path]:
    from huggingface_hub import try_to_load_from_cache

    found = {}
    for name in WANTED:
        path = try_to_load_from_cache(repo_id, name)
        if isinstance(path, str):  # else None (unknown) or the marker of a file the repo lacks
            found[name] = Path(path)
    return found


def _download(repo_id: str, filename: str) -> str:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.utils import tqdm

    class NoBars(tqdm):  # the caller's one line per file is the progress; no byte bars on stderr
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **{**kwargs, "disable": True})

    return hf_hub_download(repo_id, filename, tqdm_class=NoBars)


def _hub_call(repo_id: str, call: Callable[[], T]) -> T:
    """`call()`, with the hub's errors turned into one-line chief errors."""
    import httpx
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

    try:
        return call()
    except GatedRepoError:
        raise ModelNotFoundError(
            f"{repo_id} is gated on the Hugging Face hub: accept its terms on its page and log "
            f"in with `hf auth login`, then run `{fetch_command(repo_id)}`"
        ) from None
    except RepositoryNotFoundError:
        raise ModelNotFoundError(
            f"unknown model {repo_id}: the Hugging Face hub has no such model (if it is "
            f"private, log in with `hf auth login`){_did_you_mean(repo_id)}"
        ) from None
    except (HfHubHTTPError, httpx.HTTPError, OSError) as exc:  # no route, refused, timed out, hub down
        reason = f"the hub ({endpoint()}) cannot be reached ({type(exc).__name__})"
        raise HubFilesMissingError(_unavailable_message(repo_id, reason)) from None


def _unavailable_message(repo_id: str, reason: str) -> str:
    """The hub cannot be asked (`reason`): which files that leaves missing, and how to get them."""
    from huggingface_hub import constants

    absent = missing(_cached(repo_id))
    if not absent:  # only `chief models fetch` asks the hub when the cache has everything
        return (
            f"cannot fetch {repo_id}: {reason}; its config and tokenizer in the local Hugging Face cache stay "
            "as they are"
        )
    return (
        f"{repo_id}: {', '.join(absent)} not in the local Hugging Face cache ({constants.HF_HUB_CACHE}) and "
        f"{reason}; fetch them (config and tokenizer only, no weights) with `{fetch_command(repo_id)}` "
        f"while online{_did_you_mean(repo_id)}"
    )


def _did_you_mean(repo_id: str) -> str:
    from tinker_chief.models import lineup

    close = [name for name in lineup.near_matches(repo_id, list(lineup.cookbook_lineup())) if name != repo_id]
    return f" (did you mean {', '.join(close)}?)" if close else ""
