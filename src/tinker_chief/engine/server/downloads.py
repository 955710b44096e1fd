"""Signed download URLs for external-weights checkpoints (`RestClient.get_external_weights_urls`).

`tinker checkpoint download` (SDK 0.38) exports a checkpoint with `save_weights_external`,
asks for one URL per file and fetches each with a plain HTTP GET that carries no API key: as
on Tinker's cloud, the URL itself is the credential. Each URL names the run, checkpoint and
file, an expiry, and an HMAC-SHA256 over all of them keyed by a secret drawn when the engine
starts, so a URL works for its one file until it expires or the engine restarts, and the API
key never appears in one. The signature is checked before the disk is looked at.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from tinker.types.external_weights_urls_response import ExternalWeightsUrlsResponse

from tinker_chief.engine.server.http_errors import InvalidRequestError
from tinker_chief.engine.server.store import CheckpointStore, Clock, parse_tinker_path
from tinker_chief.errors import EngineError

URL_LIFETIME_S = 3600
PREFIX = "/api/v1/external_weights_files"  # the one route the API-key check lets through


class DownloadLinkError(EngineError):
    """A download URL that was not signed by this engine, or has expired (HTTP 403)."""

    status_code = 403


class SignedDownloads:
    def __init__(
        self, store: CheckpointStore, lifetime_s: int = URL_LIFETIME_S, clock: Clock = time.time
    ) -> None:
        self.store, self.lifetime_s, self.clock = store, lifetime_s, clock
        self._secret = secrets.token_bytes(32)

    def urls(self, base_url: str, run_id: str, checkpoint_id: str) -> dict:
        """`ExternalWeightsUrlsResponse`: a signed URL per file of the checkpoint."""
        tinker_path = f"tinker://{run_id}/{checkpoint_id}"
        run_id, kind, name = parse_tinker_path(tinker_path)
        if kind != "external_weights":
            raise InvalidRequestError(
                f"external_weights_urls: {tinker_path} is not an external weights checkpoint "
                "(tinker://<run>/external_weights/<name>, from save_weights_external)"
            )
        _, directory = self.store.resolve(tinker_path)
        expires = int(self.clock()) + self.lifetime_s
        base = base_url.rstrip("/")
        urls = {
            file.name: (
                f"{base}{PREFIX}/{quote(run_id, safe='')}/{quote(name, safe='')}/"
                f"{quote(file.name, safe='')}?expires={expires}&signature="
                f"{self._signature(run_id, name, file.name, expires)}"
            )
            for file in sorted(directory.iterdir())
            if file.is_file()
        }
        return ExternalWeightsUrlsResponse(
            urls=urls, expires=datetime.fromtimestamp(expires, UTC)
        ).model_dump(mode="json")

    def file(self, run_id: str, name: str, filename: str, expires: str, signature: str) -> Path:
        """The file a URL from `urls` names, once its signature and expiry check out."""
        expected = self._signature(run_id, name, filename, expires)
        if not hmac.compare_digest(signature.encode(), expected.encode()):
            raise DownloadLinkError(
                "this download URL was not issued by this engine (or the engine restarted "
                "since); ask for new ones with get_external_weights_urls"
            )
        if int(expires) <= self.clock():
            raise DownloadLinkError(
                f"this download URL expired at {datetime.fromtimestamp(int(expires), UTC)}"
                "; ask for new ones with get_external_weights_urls"
            )
        _, directory = self.store.resolve(f"tinker://{run_id}/external_weights/{name}")
        path = directory / filename
        if not path.is_file() or path.parent != directory:
            raise InvalidRequestError(
                f"tinker://{run_id}/external_weights/{name} has no file {filename!r}"
            )
        return path

    def _signature(self, run_id: str, name: str, filename: str, expires: int | str) -> str:
        message = "\n".join((run_id, name, filename, str(expires))).encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()
