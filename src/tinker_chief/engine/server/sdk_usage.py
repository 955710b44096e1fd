"""Which `tinker` SDKs call the engine: the oldest one it serves, and what they call.

SDK 0.38 sends `x-sdk-version` and `x-sdk-method` (the public method, e.g.
`TrainingClient.save_state`) with every request a public method makes; Tinker's servers record
them per request. The engine counts them (`GET /api/v1/engine_stats` shows `sdk_versions` and
`sdk_methods`) and names the method when it logs an engine fault. The values are strings the
client chooses, so at most `MAX_KEYS` distinct ones are kept, each cut to `MAX_VALUE_CHARS`.

`client/config` (the SDK's first request) refuses SDKs older than `MIN_SDK` with a sentence
saying so: they speak the JSON `forward_backward` protocol the engine does not serve, and would
otherwise fail later with a less helpful error.
"""

from __future__ import annotations

import re
import threading
from collections import Counter

from tinker_chief.engine.server.http_errors import InvalidRequestError

MIN_SDK = (0, 25)  # protobuf forward_backward became mandatory in tinker 0.25
MAX_KEYS = 200
MAX_VALUE_CHARS = 100
VERSION_HEADER, METHOD_HEADER = b"x-sdk-version", b"x-sdk-method"


def check_sdk_version(version: str) -> None:
    """Refuse a parseable version older than `MIN_SDK`; unknown formats (dev builds) pass."""
    match = re.match(r"\s*(\d+)\.(\d+)", version)
    if match and (int(match[1]), int(match[2])) < MIN_SDK:
        raise InvalidRequestError(
            f"client/config: tinker SDK {version} is too old for the local engine, which needs "
            f"tinker >= {MIN_SDK[0]}.{MIN_SDK[1]} (protobuf forward_backward; tested with 0.38): "
            "pip install -U 'tinker>=0.38'"
        )


class SdkUsage:
    """Thread-safe request counts per SDK version and per SDK method."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, Counter[str]] = {
            "sdk_versions": Counter(),
            "sdk_methods": Counter(),
        }

    def record(self, version: str | None, method: str | None) -> None:
        with self._lock:
            for key, value in (("sdk_versions", version), ("sdk_methods", method)):
                counts, value = self._counts[key], (value or "")[:MAX_VALUE_CHARS]
                if value and (value in counts or len(counts) < MAX_KEYS):
                    counts[value] += 1

    def stats(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {key: dict(counts) for key, counts in self._counts.items()}


class SdkUsageMiddleware:
    """ASGI middleware: counts each HTTP request's SDK headers into `usage`."""

    def __init__(self, app, usage: SdkUsage) -> None:
        self.app, self.usage = app, usage

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            headers = dict(scope.get("headers") or ())
            self.usage.record(_text(headers.get(VERSION_HEADER)), _text(headers.get(METHOD_HEADER)))
        await self.app(scope, receive, send)


def _text(value: bytes | None) -> str | None:
    return value.decode("latin-1") if value else None
