"""Built-in models as entries of the local Hugging Face cache, so they load by name.

The cookbook (and anything built on `transformers`) loads a tokenizer by hub id:
`AutoTokenizer.from_pretrained(model_name)`. Our built-ins have no hub repository, so each
materialized built-in gets two entries in the Hugging Face cache (`HF_HUB_CACHE`, by default
`~/.cache/huggingface/hub`): `tinker-chief/<name>` and the bare `<name>` alias, the name
clients send as `base_model`. Their snapshot links to the files of the materialized
directory, so nothing is copied, and offline (`HF_HUB_OFFLINE=1`) `transformers` resolves
them exactly like a downloaded model. An entry whose links dangle (the chief cache moved) is
rebuilt on the next materialization.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from pathlib import Path

NAMESPACE = "tinker-chief"

log = logging.getLogger(__name__)


def hub_ids(name: str) -> list[str]:
    """The hub ids a built-in answers to: the namespaced one and its bare alias."""
    return [f"{NAMESPACE}/{name}", name]


def register(name: str, directory: Path, hub_cache: Path | None = None) -> None:
    """Make `name` (a materialized built-in in `directory`) loadable from the HF cache.

    A cache that cannot be written (read-only home) costs only the by-name loading, so it is
    a warning rather than an error.
    """
    from huggingface_hub import constants
    from huggingface_hub.file_download import repo_folder_name

    root = Path(hub_cache or constants.HF_HUB_CACHE)
    for repo_id in hub_ids(name):
        try:
            _ensure_entry(
                root / repo_folder_name(repo_id=repo_id, repo_type="model"),
                repo_id,
                Path(directory),
            )
        except OSError as exc:
            log.warning(
                "could not register %s in the Hugging Face cache %s (%s); "
                "load it by its directory instead",
                repo_id,
                root,
                exc,
            )


def _ensure_entry(folder: Path, repo_id: str, directory: Path) -> None:
    # A fixed revision per id: the entry only points at files, it never has two versions.
    commit = hashlib.sha1(f"{NAMESPACE}:{repo_id}".encode()).hexdigest()
    snapshot = folder / "snapshots" / commit
    ref = folder / "refs" / "main"
    if _is_current(snapshot, ref, commit, directory):
        return
    snapshot.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{commit}.", dir=snapshot.parent))
    try:
        for source in sorted(directory.iterdir()):
            if source.is_file():
                (staging / source.name).symlink_to(source.resolve())
        shutil.rmtree(snapshot, ignore_errors=True)
        try:
            os.rename(staging, snapshot)
        except OSError:
            if not _is_complete(snapshot, directory):  # another process wrote the same links first
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    ref.parent.mkdir(parents=True, exist_ok=True)
    tmp_ref = ref.with_name(f".main.{os.getpid()}.tmp")
    tmp_ref.write_text(commit)
    os.replace(tmp_ref, ref)


def _is_current(snapshot: Path, ref: Path, commit: str, directory: Path) -> bool:
    try:
        return ref.read_text().strip() == commit and _is_complete(snapshot, directory)
    except OSError:
        return False


def _is_complete(snapshot: Path, directory: Path) -> bool:
    """Every file of the model is linked and every link resolves (exists() follows links)."""
    wanted = {p.name for p in directory.iterdir() if p.is_file()}
    linked = {p.name for p in snapshot.iterdir()} if snapshot.is_dir() else set()
    return wanted <= linked and all((snapshot / name).exists() for name in linked)
