"""A version's adapter files, brought down from the backend that trained it through the SDK.

The path `tinker checkpoint download` takes, on Tinker's cloud and on the local engine alike: a
training client loaded from the version's saved state (`create_training_client_from_state`),
`save_weights_external` under a temporary name with the shortest TTL Tinker allows, the signed
URL of each file (`get_external_weights_urls`), a plain HTTP download, and the temporary
checkpoint deleted again. Sampler checkpoints cannot be exported this way (on the cloud either),
so a version is exported from the training state its run saved beside it (`config.state_path`).
"""

from __future__ import annotations

import contextlib
import shutil
import urllib.error
import urllib.request
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from tinker_chief.errors import ExportError
from tinker_chief.registry import ModelRecord

if TYPE_CHECKING:
    from tinker_chief.connection import Connection

EXPORT_TTL_S = 3600  # Tinker's shortest TTL: a temporary export left behind by a crash expires
_DOWNLOAD_TIMEOUT_S = 60
_CHUNK = 1 << 20


def state_path_of(record: ModelRecord) -> str:
    """The `tinker://.../weights/...` state saved with the version, or why there is none."""
    state = record.config.get("state_path")
    if isinstance(state, str) and state.startswith("tinker://"):
        return state
    if record.recipe == "base" or record.tinker_path is None:
        raise ExportError(
            f"{record.ref} is a base model record with no checkpoint of its own; export a trained "
            "version (`chief registry list`)"
        )
    raise ExportError(
        f"{record.ref} has no saved training state to export (its config has no `state_path`; "
        f"only its sampler weights {record.tinker_path} were recorded, and sampler checkpoints "
        "cannot be downloaded); export a version `chief train` registered"
    )


def download_adapter(connection: Connection, record: ModelRecord, destination: Path) -> list[str]:
    """Write the version's adapter files into the existing, empty `destination`; returns their
    names. A failure at any step is one `ExportError` line naming the checkpoint and the backend."""
    state = state_path_of(record)
    service = connection.service_client()
    try:
        training = service.create_training_client_from_state(
            state, user_metadata={"created_by": "chief export"}
        ).result()
        export_path = (
            training.save_weights_external("chief-export", ttl_seconds=EXPORT_TTL_S).result().path
        )
    except Exception as exc:  # the SDK's own hierarchy: the server's words are what matter
        raise ExportError(
            f"{record.ref}: cannot load its weights {state} from {connection.where}: "
            f"{_first_line(exc)} "
            "(weights past their TTL are gone; a local engine keeps them in its --state-dir)"
        ) from None
    import tinker

    rest = tinker.RestClient(base_url=connection.base_url, api_key=connection.api_key)
    try:
        urls = rest.get_external_weights_urls(export_path).result().urls
        return _fetch_all(urls, destination, f"{record.ref} ({export_path})")
    except ExportError:
        raise
    except Exception as exc:
        raise ExportError(
            f"{record.ref}: cannot download {export_path}: {_first_line(exc)}"
        ) from None
    finally:
        with contextlib.suppress(Exception):  # best effort: its TTL removes it otherwise
            rest.delete_checkpoint_from_tinker_path(export_path).result()


def _fetch_all(urls: dict[str, str], destination: Path, what: str) -> list[str]:
    if not urls:
        raise ExportError(f"{what}: the backend listed no files to download")
    for name, url in sorted(urls.items()):
        target = _safe_target(destination, name, what)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            with (
                urllib.request.urlopen(url, timeout=_DOWNLOAD_TIMEOUT_S) as response,
                target.open("wb") as out,
            ):
                shutil.copyfileobj(response, out, _CHUNK)
        except (urllib.error.URLError, OSError) as exc:
            raise ExportError(f"{what}: downloading {name} failed: {_first_line(exc)}") from None
    return sorted(urls)


def _safe_target(destination: Path, name: str, what: str) -> Path:
    """`destination/name`, refusing names that climb out of it (a malicious or broken listing)."""
    parts = PurePosixPath(name).parts
    if not parts or PurePosixPath(name).is_absolute() or ".." in parts:
        raise ExportError(f"{what}: refusing the file name {name!r} (outside the export)")
    return destination.joinpath(*parts)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
