"""A hub model's config and tokenizer, never its weights: from the local Hugging Face cache, or
fetched from the hub into it.

Planning a model that has no weights here needs only its `config.json` (LoRA counts, learning
rate) and its tokenizer files (token counts, chat template). `hub_files(repo_id)` returns the
cache snapshot that holds them: straight from the cache when it has them (no network), else,
online, `fetch` asks the hub (`HF_ENDPOINT`) for the repo's commit and file list
(`/api/models/<id>`) and downloads the wanted files it has at that commit. Offline
(`HF_HUB_OFFLINE=1`) or with the hub unreachable, a missing file is one `HubFilesMissingError`
naming the files and `chief models fetch ID`, the command that fetches them. `WANTED` lists
every file ever downloaded: weights (`*.safetensors`, `*.bin`, ...) are not among them.

A hub may be hostile or broken, so nothing it says is used unchecked (huggingface_hub's own
download would make file paths of its ETag and X-Repo-Commit headers, so chief downloads
itself): the commit must be 40 hex digits and each file's X-Repo-Commit that commit, an ETag a
plain hash; each file must be within its kind's cap (`hf_files.limit`) and be what its kind is
(a JSON object, UTF-8 text); the whole fetch must end within `CHIEF_HUB_TIMEOUT` seconds (a hub
dripping one byte at a time included, and the lookups of the hub's host name and of the CDN
hosts it redirects large files to: a line whose DNS server never answers waits on the OS
resolver, which no HTTP timeout covers); a repo whose
tokenizer or config is its own Python code is refused unless the user passed
`--trust-remote-code`. Any failure is one error line and the cache is untouched: the files are
written into it (`_install`) only once all of them passed.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import quote, urlsplit

from tinker_chief.errors import DataError, ModelNotFoundError
from tinker_chief.files import MIB, json_object
from tinker_chief.models import hf_files
from tinker_chief.settings import positive_seconds

if TYPE_CHECKING:
    import httpx

T = TypeVar("T")
CONFIG = hf_files.CONFIG
# Without these a plan has no numbers: the config, the tokenizer's settings (class, chat
# template) and one vocabulary file, whichever of the three kinds the repo has.
REQUIRED = (CONFIG, hf_files.TOKENIZER_CONFIG)
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
FETCH_TIMEOUT_ENV = "CHIEF_HUB_TIMEOUT"
# Enough for every wanted file of the largest real repo (~100 MB at worst, tokenizer.json
# included) on a slow line; a hub that answers slower is stopped.
DEFAULT_FETCH_TIMEOUT_S = 120.0
# The file list of the largest repos (thousands of files) is a few MB.
LISTING_LIMIT = 16 * MIB
MAX_REDIRECTS = 10  # the hub sends a large file's GET on to a CDN: one or two
_COMMIT = re.compile(r"[0-9a-f]{40}")
_COMMIT_SPELLED = "40 hex digits"
_ETAG = re.compile(r'(W/)?"?[0-9A-Za-z_-]{1,128}"?')
_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}\.py")  # a top-level module of the repo
# Repos whose files this process downloaded: their plans say the tokenizer came from the hub.
_fetched: set[str] = set()


class HubFilesMissingError(ModelNotFoundError):
    """A hub model's config or tokenizer is not in the local cache and cannot be fetched now."""


class HubAnswerError(DataError):
    """The hub answered something chief will not use: a name that could be a path, an oversize
    or broken file."""


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


def hub_files(repo_id: str, *, trust_remote_code: bool = False) -> HubFiles:
    """The config and tokenizer of `repo_id`: from the cache when complete, else fetched when
    online (`fetch`: refused when they are the model's own code, unless `trust_remote_code`)."""
    found = _cached(repo_id)
    if not missing(found):
        return HubFiles(repo_id, found[CONFIG].parent, repo_id in _fetched, tuple(found))
    from huggingface_hub import constants

    if constants.is_offline_mode():
        raise HubFilesMissingError(_unavailable_message(repo_id, OFFLINE))
    return fetch(repo_id, trust_remote_code=trust_remote_code)


def fetch(
    repo_id: str,
    progress: Callable[[str], None] | None = None,
    *,
    trust_remote_code: bool = False,
) -> HubFiles:
    """Download `repo_id`'s config and tokenizer files (never weights) into the HF cache.

    Asks the hub even when the cache has them, so a changed file is refreshed. `progress` gets
    one line when the hub is asked and one per file before it is downloaded. Nothing reaches the
    cache unless every file passed (see the module's docstring); a repo whose tokenizer or config
    is its own code is refused (`CustomCodeRefused`) unless `trust_remote_code`, and then its
    top-level `*.py` files are fetched too, so transformers can load that code offline.
    """
    from huggingface_hub import constants

    if constants.is_offline_mode():
        raise HubFilesMissingError(_unavailable_message(repo_id, OFFLINE))
    if progress is None:
        progress = _quiet
    progress(f"fetching {repo_id}'s config and tokenizer from {endpoint()} (no weights)")
    deadline = _Deadline(fetch_timeout())
    commit, listed = _hub_call(repo_id, partial(_listing, repo_id, deadline))
    names = [name for name in listed if name in WANTED]
    absent = missing(names)
    if absent:
        raise ModelNotFoundError(
            f"{repo_id} on the Hugging Face hub has no {', '.join(absent)}: chief plans a "
            "model from its config.json and tokenizer files"
        )
    files: dict[str, bytes] = {}
    for index, name in enumerate(names, 1):
        progress(f"  {name} ({index}/{len(names)})")
        files[name] = _hub_call(repo_id, partial(_download, repo_id, commit, name, deadline))
    with tempfile.TemporaryDirectory(prefix="chief-fetch-") as staging:
        for name, content in files.items():
            (Path(staging) / name).write_bytes(content)
        runs_code = hf_files.refuse_custom_code(repo_id, Path(staging), trust_remote_code)
    if runs_code:  # trusted: the modules its auto_map names, and any they import beside them
        code = [name for name in listed if _MODULE.fullmatch(name)]
        for index, name in enumerate(code, 1):
            progress(f"  {name} (the model's own code, {index}/{len(code)})")
            files[name] = _hub_call(repo_id, partial(_download, repo_id, commit, name, deadline))
    snapshot = _install(repo_id, commit, files)
    _fetched.add(repo_id)
    return HubFiles(repo_id, snapshot, True, tuple(files))


def fetch_timeout() -> float:
    """Seconds a whole fetch may take: `CHIEF_HUB_TIMEOUT`, else `DEFAULT_FETCH_TIMEOUT_S`."""
    return positive_seconds(FETCH_TIMEOUT_ENV, DEFAULT_FETCH_TIMEOUT_S)


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


class _PastDeadline(Exception):
    """The fetch's deadline passed mid-answer."""


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds

    def left(self) -> float:
        """Seconds left; `_PastDeadline` once there are none."""
        left = self._end - time.monotonic()
        if left <= 0:
            raise self.passed()
        return left

    def passed(self, detail: str = "") -> _PastDeadline:
        return _PastDeadline(
            f"the hub ({endpoint()}) did not finish answering within {self.seconds:g} s{detail} "
            f"(raise {FETCH_TIMEOUT_ENV} for a slow line)"
        )


def _resolve_host(url: str, deadline: _Deadline) -> None:
    """Look `url`'s host name up before the deadline, or raise `_PastDeadline`.

    httpx's timeouts start once there is an address to connect to: the lookup before it waits
    on the OS resolver, which retries an unanswering DNS server for as long as its own settings
    say (tens of seconds is common). The lookup runs in a daemon thread this waits on for the
    time left; one that fails is left to the request to report (`cannot be reached`), and one
    still going at the deadline is abandoned to finish on its own."""
    parts = urlsplit(url)
    host = parts.hostname
    if not host:
        return
    port = parts.port or (443 if parts.scheme == "https" else 80)
    answered = threading.Event()

    def lookup() -> None:
        try:
            socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError:
            pass  # the request's own lookup fails the same way and says so
        finally:
            answered.set()

    threading.Thread(target=lookup, name="chief-hub-lookup", daemon=True).start()
    if not answered.wait(deadline.left()):
        raise deadline.passed(f" (looking up {host} had no answer)")


def _listing(repo_id: str, deadline: _Deadline) -> tuple[str, list[str]]:
    """The repo's commit and file names, from `/api/models/<id>`."""
    url = f"{endpoint()}/api/models/{repo_id}"
    _resolve_host(url, deadline)
    info = json_object(_get(url, LISTING_LIMIT, deadline), url, error=HubAnswerError)
    commit = info.get("sha")
    if not isinstance(commit, str) or not _COMMIT.fullmatch(commit):
        raise HubAnswerError(
            f"the hub ({endpoint()}) listed {repo_id} with commit (sha) {_shown(commit)}; "
            + f"expected {_COMMIT_SPELLED}"
        )
    siblings = info.get("siblings")
    entries = siblings if isinstance(siblings, list) else []
    names = [entry.get("rfilename") for entry in entries if isinstance(entry, dict)]
    return commit, [name for name in names if isinstance(name, str)]


def _download(repo_id: str, commit: str, name: str, deadline: _Deadline) -> bytes:
    """One file of the repo at `commit`, checked: the hub's headers name that commit and a plain
    hash, the file is within its kind's cap and is what its kind must be (`hf_files.check`)."""
    url = f"{endpoint()}/{repo_id}/resolve/{commit}/{quote(name)}"
    check = partial(_check_headers, repo_id, commit, name)
    content = _get(url, hf_files.limit(name), deadline, check)
    hf_files.check(name, content, url, error=HubAnswerError)
    return content


def _get(
    url: str,
    cap: int,
    deadline: _Deadline,
    check: Callable[[httpx.Response], None] | None = None,
) -> bytes:
    """The body of GET `url`, at most `cap` bytes, before the deadline; each blocking read waits
    at most the time left (and at most HF_HUB_DOWNLOAD_TIMEOUT), so a hub that drips a byte at a
    time is stopped at the deadline and one that stalls soon after. The hub's errors (unknown or
    gated repo) are huggingface_hub's, from the status and headers alone: an error's body is
    never read."""
    import httpx
    from huggingface_hub import constants
    from huggingface_hub.utils import build_hf_headers, get_session

    headers = {**build_hf_headers(), "Accept-Encoding": "identity"}  # no decompression bombs
    try:
        timeout = httpx.Timeout(min(deadline.left(), constants.HF_HUB_DOWNLOAD_TIMEOUT))
        session = get_session()
        request = session.build_request("GET", url, headers=headers, timeout=timeout)
        with contextlib.ExitStack() as answers:
            response = answers.enter_context(_sent(session, request))
            first = response  # the hub's own answer, whose headers `check` judges
            for redirect in itertools.count(1):
                if response.next_request is None:
                    break
                if redirect > MAX_REDIRECTS:
                    raise HubAnswerError(f"{url}: more than {MAX_REDIRECTS} redirects")
                # A large file is a redirect to a CDN: its host name is looked up before the
                # deadline too. httpx built the request, dropping the token for another host.
                _resolve_host(str(response.next_request.url), deadline)
                response = answers.enter_context(_sent(session, response.next_request))
            if response.is_error:
                _raise_for_status(response)
            if check is not None:
                check(first)
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > cap:
                raise _too_large(url, cap)
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > cap:
                    raise _too_large(url, cap)
                deadline.left()
    except httpx.TimeoutException:
        deadline.left()  # past the deadline: say so, else the hub cannot be reached
        raise
    return bytes(body)


@contextlib.contextmanager
def _sent(session: httpx.Client, request: httpx.Request) -> Iterator[httpx.Response]:
    """`request`'s response, its body still to read, closed at the end of the block; a redirect
    is not followed but built (`next_request`) for the caller to follow."""
    response = session.send(request, stream=True, follow_redirects=False)
    try:
        yield response
    finally:
        response.close()


def _check_headers(repo_id: str, commit: str, name: str, response: httpx.Response) -> None:
    """The hub's own answer (before any redirect to a CDN) names the commit asked for and, if it
    sends one, an ETag that is a plain hash: huggingface_hub would make paths of both."""
    said = response.headers.get("X-Repo-Commit")
    if said is not None and said != commit:
        raise HubAnswerError(
            f"the hub ({endpoint()}) answered {repo_id}/{name} with X-Repo-Commit {_shown(said)}; "
            f"expected the commit of {repo_id} it listed, {commit} ({_COMMIT_SPELLED})"
        )
    for header in ("X-Linked-Etag", "ETag"):
        etag = response.headers.get(header)
        if etag is not None and not _ETAG.fullmatch(etag):
            raise HubAnswerError(
                f"the hub ({endpoint()}) answered {repo_id}/{name} with {header} {_shown(etag)}; "
                "expected a plain hash (letters, digits, - and _)"
            )


def _raise_for_status(response: httpx.Response) -> None:
    """huggingface_hub's error for a failed answer, judged from a copy without the body."""
    import httpx
    from huggingface_hub.utils import hf_raise_for_status

    body_headers = ("content-length", "content-encoding")
    kept = {k: v for k, v in response.headers.items() if k.lower() not in body_headers}
    bare = httpx.Response(response.status_code, headers=kept, request=response.request)
    hf_raise_for_status(bare)
    response.raise_for_status()  # any error status huggingface_hub lets through


def _too_large(url: str, cap: int) -> HubAnswerError:
    name = url.rsplit("/", 1)[-1]
    most = f"the most chief accepts for a model's {name}"
    return HubAnswerError(f"{url}: larger than {cap // MIB} MiB, {most}")


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _install(repo_id: str, commit: str, fetched: dict[str, bytes]) -> Path:
    """`fetched` written into the cache's snapshot of `commit` (the hub layout: refs/main names
    the commit), each file atomically (a temporary sibling renamed over it, never written
    through a link), refs/main last."""
    from huggingface_hub import constants
    from huggingface_hub.file_download import repo_folder_name

    folder = Path(constants.HF_HUB_CACHE) / repo_folder_name(repo_id=repo_id, repo_type="model")
    snapshot = folder / "snapshots" / commit
    try:
        snapshot.mkdir(parents=True, exist_ok=True)
        for name, content in fetched.items():
            _replace(snapshot / name, content)
        (folder / "refs").mkdir(exist_ok=True)
        _replace(folder / "refs" / "main", commit.encode())
    except OSError as exc:
        raise ModelNotFoundError(
            f"{folder}: cannot write {repo_id}'s files into the Hugging Face cache "
            f"({exc.strerror or type(exc).__name__})"
        ) from None
    return snapshot


def _replace(path: Path, content: bytes) -> None:
    staging = Path(tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)[1])
    try:
        staging.write_bytes(content)
        os.replace(staging, path)
    finally:
        staging.unlink(missing_ok=True)


def _quiet(line: str) -> None:
    pass


def _hub_call(repo_id: str, call: Callable[[], T]) -> T:
    """`call()`, with the hub's errors turned into one-line chief errors."""
    import httpx
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

    try:
        return call()
    except _PastDeadline as late:
        raise HubFilesMissingError(_unavailable_message(repo_id, str(late))) from None
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
    except (
        HfHubHTTPError,
        httpx.HTTPError,
        OSError,
    ) as exc:  # no route, refused, timed out, hub down
        reason = f"the hub ({endpoint()}) cannot be reached ({type(exc).__name__})"
        raise HubFilesMissingError(_unavailable_message(repo_id, reason)) from None


def _unavailable_message(repo_id: str, reason: str) -> str:
    """The hub cannot be asked (`reason`): which files that leaves missing, and how to get them."""
    from huggingface_hub import constants

    absent = missing(_cached(repo_id))
    if not absent:  # only `chief models fetch` asks the hub when the cache has everything
        return (
            f"cannot fetch {repo_id}: {reason}; "
            "its config and tokenizer in the local Hugging Face cache stay as they are"
        )
    return (
        f"{repo_id}: {', '.join(absent)} not in the local Hugging Face cache "
        f"({constants.HF_HUB_CACHE}) and {reason}; fetch them (config and tokenizer only, "
        f"no weights) with `{fetch_command(repo_id)}` while online{_did_you_mean(repo_id)}"
    )


def _did_you_mean(repo_id: str) -> str:
    from tinker_chief.models import lineup

    close = [
        name
        for name in lineup.near_matches(repo_id, list(lineup.cookbook_lineup()))
        if name != repo_id
    ]
    return f" (did you mean {', '.join(close)}?)" if close else ""
