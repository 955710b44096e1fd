"""The future table: every mutating SDK call returns a request id whose result is long-polled.

The compute thread completes futures (`complete`/`fail`); HTTP handlers on the event loop wait
for them with `wait(request_id, timeout)`, which returns `None` on timeout so the route can
answer `try_again` (the SDK re-polls at once, so holding the poll is what keeps it cheap).
Results are either protobuf bytes (ForwardBackwardOutput, SampleResponse: the SDK refuses
JSON for those) or a JSON dict. Retrieved results are kept a while for SDK retries, then
dropped so a long session does not grow without bound.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Union

from tinker_chief.engine.server.errors import ErrorCategory, NotFoundError

Payload = Union[bytes, dict]

_KEEP_AFTER_RETRIEVAL_S = 600.0


@dataclass(frozen=True)
class FutureError:
    message: str
    category: ErrorCategory
    status: int


@dataclass
class _Entry:
    future: concurrent.futures.Future
    kind: str
    retrieved_at: float | None = None
    created_at: float = field(default_factory=time.monotonic)


class FutureTable:
    """Thread-safe map request_id -> pending/finished result."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        self._counter = itertools.count(1)

    def create(self, kind: str) -> str:
        request_id = f"req-{next(self._counter)}-{kind}"
        with self._lock:
            self._prune()
            self._entries[request_id] = _Entry(concurrent.futures.Future(), kind)
        return request_id

    def complete(self, request_id: str, payload: Payload) -> None:
        entry = self._get(request_id)
        if not entry.future.done():
            entry.future.set_result(payload)

    def fail(self, request_id: str, error: FutureError) -> None:
        entry = self._get(request_id)
        if not entry.future.done():
            entry.future.set_result(error)

    def fail_pending(self, message: str) -> int:
        """Fail every unfinished future (engine shutdown); returns how many."""
        with self._lock:
            pending = [e for e in self._entries.values() if not e.future.done()]
        for entry in pending:
            entry.future.set_result(FutureError(message, "server", 503))
        return len(pending)

    async def wait(self, request_id: str, timeout: float) -> Payload | FutureError | None:
        """The result, or None if it is still pending after `timeout` seconds."""
        entry = self._get(request_id)
        if not entry.future.done():
            wrapped = asyncio.wrap_future(entry.future)
            # asyncio.wait does not cancel on timeout, so the underlying future stays usable.
            await asyncio.wait({wrapped}, timeout=timeout)
            if not entry.future.done():
                return None
        entry.retrieved_at = entry.retrieved_at or time.monotonic()
        return entry.future.result()

    def _get(self, request_id: str) -> _Entry:
        with self._lock:
            entry = self._entries.get(request_id)
        if entry is None:
            raise NotFoundError(f"unknown request_id {request_id!r} (expired, or the engine restarted)")
        return entry

    def _prune(self) -> None:
        now = time.monotonic()
        stale = [rid for rid, e in self._entries.items()
                 if e.retrieved_at is not None and now - e.retrieved_at > _KEEP_AFTER_RETRIEVAL_S]
        for rid in stale:
            del self._entries[rid]
