"""The future table: every mutating SDK call returns a request id whose result is long-polled.

The compute thread completes futures (`complete`/`fail`); HTTP handlers on the event loop wait
for them with `wait(request_id, timeout)`, which returns `None` on timeout so the route can
answer `try_again` (the SDK re-polls at once, so holding the poll is what keeps it cheap).
Results are either protobuf bytes (ForwardBackwardOutput, SampleResponse: the SDK refuses
JSON for those) or a JSON dict. Retrieved results are kept a while for SDK retries, then
dropped so a long session does not grow without bound; results nobody retrieves expire
`RESULT_TTL_S` after they completed (a later retrieve gets a 410 saying so). `stats()` counts
the results held and their bytes (engine_stats reports them). Time comes from an injectable
clock, so tests move it instead of sleeping.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from tinker_chief.engine.server.http_errors import ErrorCategory, GoneError, NotFoundError, shown

Payload = bytes | dict

_KEEP_AFTER_RETRIEVAL_S = 600.0
RESULT_TTL_S = 900.0  # a finished result nobody retrieved is dropped this long after it completed
PRUNE_INTERVAL_S = 60.0  # how often the app prunes an idle engine's table (see app.py)
_EXPIRED_IDS_KEPT = 10_000  # ids remembered as expired, to answer 410 rather than 404


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
    completed_at: float | None = None
    size_bytes: int = 0


class FutureTable:
    """Thread-safe map request_id -> pending/finished result.

    `result_ttl_s` and `clock` exist for tests (a short TTL, a clock they advance)."""

    def __init__(
        self, result_ttl_s: float = RESULT_TTL_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._entries: dict[str, _Entry] = {}
        self._expired: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._expired_count = 0
        self._lock = threading.Lock()
        self._counter = itertools.count(1)
        self._ttl = result_ttl_s
        self._clock = clock

    def create(self, kind: str) -> str:
        request_id = f"req-{next(self._counter)}-{kind}"
        with self._lock:
            self._prune()
            self._entries[request_id] = _Entry(concurrent.futures.Future(), kind)
        return request_id

    def complete(self, request_id: str, payload: Payload) -> None:
        self._finish(request_id, payload)

    def fail(self, request_id: str, error: FutureError) -> None:
        self._finish(request_id, error)

    def _finish(self, request_id: str, result: Payload | FutureError) -> None:
        entry = self._get(request_id)
        if not entry.future.done():
            entry.completed_at = self._clock()
            entry.size_bytes = _size_of(result)
            entry.future.set_result(result)

    def fail_pending(self, message: str) -> int:
        """Fail every unfinished future (engine shutdown); returns how many."""
        with self._lock:
            pending = [e for e in self._entries.values() if not e.future.done()]
        for entry in pending:
            entry.completed_at = self._clock()
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
        entry.retrieved_at = entry.retrieved_at or self._clock()
        return entry.future.result()

    def prune(self) -> None:
        """Drop what has expired (creating a future does this too; the app also calls it
        periodically so an idle engine frees its memory)."""
        with self._lock:
            self._prune()

    def stats(self) -> dict[str, int]:
        """Finished results held in memory (and those of them nobody retrieved yet), for
        engine_stats."""
        with self._lock:
            self._prune()
            held = [e for e in self._entries.values() if e.completed_at is not None]
        unretrieved = [e for e in held if e.retrieved_at is None]
        return {
            "results_held": len(held),
            "results_held_bytes": sum(e.size_bytes for e in held),
            "results_unretrieved": len(unretrieved),
            "results_unretrieved_bytes": sum(e.size_bytes for e in unretrieved),
            "results_expired": self._expired_count,
        }

    def _get(self, request_id: str) -> _Entry:
        with self._lock:
            entry = self._entries.get(request_id)
            expired = request_id in self._expired
        if expired:
            raise GoneError(
                f"the result of request {shown(request_id)} expired: results are kept "
                f"{self._ttl:g} seconds after they complete unless retrieved"
            )
        if entry is None:
            raise NotFoundError(
                f"unknown request_id {shown(request_id)} (expired, or the engine restarted)"
            )
        return entry

    def _prune(self) -> None:
        now = self._clock()
        stale = [
            rid
            for rid, e in self._entries.items()
            if e.retrieved_at is not None and now - e.retrieved_at > _KEEP_AFTER_RETRIEVAL_S
        ]
        for rid in stale:
            del self._entries[rid]
        unclaimed = [
            rid
            for rid, e in self._entries.items()
            if e.retrieved_at is None
            and e.completed_at is not None
            and now - e.completed_at > self._ttl
        ]
        for rid in unclaimed:
            del self._entries[rid]
            self._expired[rid] = None
            self._expired_count += 1
        while len(self._expired) > _EXPIRED_IDS_KEPT:
            self._expired.popitem(last=False)


def _size_of(result: Payload | FutureError) -> int:
    """Bytes a finished result holds: exact for protobuf bytes, the JSON size for the small
    dicts."""
    if isinstance(result, bytes):
        return len(result)
    if isinstance(result, FutureError):
        return len(result.message)
    return len(json.dumps(result, default=str))
