"""Pushing an export to the Hugging Face hub with `huggingface_hub`: one repository, one commit.

`push` creates the repository when it is missing (private unless asked otherwise; an existing
repository keeps its visibility), then commits the whole export folder in ONE `create_commit`:
every file of the export added, and every file the repository has that the export does not (an
eval result of a task since dropped, the other format's weights) deleted, so the repository is
the export. `upload_folder` is not used: with `hf_xet` installed it may split a folder into
several commits. The token is the usual one (`HF_TOKEN`, else `hf auth login`'s stored token):
chief never reads, prints or stores it, and scrubs it from any error before showing it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tinker_chief.errors import ConfigurationError, ExportError

if TYPE_CHECKING:
    from huggingface_hub import CommitOperation

_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_KEPT_REMOTE = frozenset({".gitattributes"})


@dataclass(frozen=True)
class Pushed:
    """Where the export landed: the repository, its commit and their URLs."""

    repo: str
    commit_sha: str
    commit_url: str
    repo_url: str
    private: bool | None  # what the repository was created as; None: it existed already


def check_repo_id(repo: str) -> str:
    """`ORG/NAME` as the hub spells repository ids, or a one-line error."""
    if (
        not isinstance(repo, str)
        or not _REPO_ID.match(repo)
        or ".." in repo
        or repo.endswith((".git", "."))
    ):
        raise ConfigurationError(
            f"--repo {repo!r}: expected ORG/NAME (letters, digits, '-', '_', '.')"
        )
    return repo


def token_or_error() -> str:
    """The hub token from the usual places, after checking the hub is not switched off."""
    from huggingface_hub import constants, get_token

    if constants.is_offline_mode():
        raise ExportError(
            "the Hugging Face hub is switched off here (HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE is "
            "set); publishing needs it: unset them for this command"
        )
    token = get_token()
    if not token:
        raise ExportError(
            "no Hugging Face token: set HF_TOKEN or run `hf auth login` (it needs write access)"
        )
    return token


def push(folder: Path, repo: str, *, private: bool, message: str) -> Pushed:
    """Commit `folder` to `repo` as described above; any failure is one `ExportError` line."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, constants

    token = token_or_error()
    api = HfApi(token=token)
    endpoint = constants.ENDPOINT
    try:
        existed = api.repo_exists(repo, repo_type="model")
        api.create_repo(repo, repo_type="model", private=private, exist_ok=True)
        local = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
        stale = set(api.list_repo_files(repo, repo_type="model")) - set(local) - _KEPT_REMOTE
        operations: list[CommitOperation] = [
            CommitOperationAdd(name, str(folder / name)) for name in local
        ]
        operations += [CommitOperationDelete(name) for name in sorted(stale)]
        info = api.create_commit(repo, operations, commit_message=message, repo_type="model")
    except Exception as exc:  # huggingface_hub's HTTP errors, httpx's network errors, bad metadata
        raise ExportError(
            f"publishing to {repo} on {endpoint} failed: {_one_line(exc, token)}"
        ) from None
    return Pushed(
        repo,
        str(info.oid),
        str(info.commit_url),
        f"{endpoint}/{repo}",
        None if existed else private,
    )


def _one_line(exc: BaseException, token: str) -> str:
    """The error's first meaningful line with the token (and anything key-like) taken out."""
    from tinker_chief.registry import scrub

    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    first = next(
        (line for line in lines if not line.startswith("-")),
        lines[0] if lines else type(exc).__name__,
    )
    if "Invalid metadata" in first and len(lines) > 1:  # the hub's reasons follow on "- " lines
        first = f"{first} {lines[1]}"
    return str(scrub(first.replace(token, "***")))
