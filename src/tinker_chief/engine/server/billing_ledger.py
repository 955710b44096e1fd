"""The engine's own usage counters, served as Tinker's billing API.

SDK 0.38's `AdminClient.get_billing_usage` (`GET /api/v1/billing/usage/events`) and
`get_current_checkpoint_storage_usage` (`GET /api/v1/billing/usage/checkpoints/current`), and
the `tinker billing usage` / `tinker billing checkpoint-storage` commands built on them, work
against the engine unmodified. What is counted, per UTC hour, session and base model:

- training: the tokens of every datum of every `forward_backward` (forward-only passes
  included) that the compute worker finished, counted when it finished;
- sampling_prefill: the prompt tokens of every finished `asample`, once per request whatever
  its `num_samples`, all of them uncached (`cached` false), including a shared preamble's that
  the sampler prefilled once for a batch or kept from an earlier one: the counters count the
  work asked for, not the work the engine saved;
- sampling_sample: the tokens of every returned sequence (`compute_logprobs` is a sample with
  `max_tokens=1`, so it samples one);
- checkpoint: every persisted checkpoint (`save_state`, `save_weights_for_sampler`,
  `save_weights_external`; in-memory sampler snapshots are none);
- storage: gigabyte-hours (1 GB = 10^9 bytes) of every checkpoint from its save until its
  deletion (through the REST API or its TTL), hour by hour.

A session's project and `user_metadata` are what `create_session` sent; a checkpoint or a
training token belongs to the session that created its training run. The engine has no rate
card, so every cost and rate is null (the SDK's "no applicable rate"); chief prices tokens at
its own dated table. The counters live in `<state_dir>/billing.db` (SQLite, one upsert per
count), so a restart keeps the day's usage; at start the ledger adopts checkpoints saved
before it existed and closes those whose files are gone.
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pydantic
from tinker import types

from tinker_chief.engine.server.http_errors import InvalidRequestError
from tinker_chief.engine.server.store import StoredCheckpoint

Clock = Callable[[], float]
GB = 1_000_000_000  # the storage billing unit
HOUR_S = 3600
MAX_WINDOW = timedelta(days=14)  # the SDK's documented limit on one usage query
BILLING_FILE = "billing.db"
COUNTED_KINDS = ("training", "sampling_prefill", "sampling_sample", "checkpoint")
_HOUR_EXAMPLE = "an RFC 3339 time on a UTC hour, e.g. 2026-07-13T00:00:00Z"

_INSERT_STORED = """INSERT INTO stored (tinker_path, session_id, base_model, size_bytes, created)
    VALUES (?, ?, ?, ?, ?)"""
_SCHEMA = """
CREATE TABLE IF NOT EXISTS usage (
    hour INTEGER NOT NULL,
    session_id TEXT NOT NULL,
    base_model TEXT NOT NULL,
    kind TEXT NOT NULL,
    cached INTEGER NOT NULL,
    quantity INTEGER NOT NULL,
    PRIMARY KEY (hour, session_id, base_model, kind, cached)
);
CREATE TABLE IF NOT EXISTS sessions (
    session_id TEXT PRIMARY KEY,
    project_id TEXT,
    user_metadata_json TEXT,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS stored (
    id INTEGER PRIMARY KEY,
    tinker_path TEXT NOT NULL,
    session_id TEXT NOT NULL,
    base_model TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    created REAL NOT NULL,
    deleted REAL
);
CREATE INDEX IF NOT EXISTS stored_live ON stored (tinker_path) WHERE deleted IS NULL
"""


def session_of_run(run_id: str) -> str:
    """The session that created a training run (run ids are `<session>:train:<n>`), or ""."""
    session, marker, _ = run_id.partition(":train:")
    return session if marker else ""


def _stamp(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


def _created(record: StoredCheckpoint) -> float:
    try:
        return datetime.fromisoformat(record.created).timestamp()
    except (TypeError, ValueError):
        return time.time()


class BillingLedger:
    """Thread-safe usage counters in one SQLite file (compute thread and event loop both count)."""

    def __init__(self, state_dir: Path, clock: Clock = time.time) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            Path(state_dir) / BILLING_FILE, check_same_thread=False, isolation_level=None
        )
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = NORMAL")
        with self._lock:
            for statement in _SCHEMA.split(";\n"):
                self._db.execute(statement)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- counting ------------------------------------------------------------------------------

    def record_session(
        self, session_id: str, project_id: str | None, user_metadata: dict | None
    ) -> None:
        metadata = (
            None
            if user_metadata is None
            else json.dumps({str(k): str(v) for k, v in user_metadata.items()})
        )
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO sessions VALUES (?, ?, ?, ?)",
                (session_id, project_id, metadata, self.clock()),
            )

    def add(
        self,
        kind: str,
        session_id: str | None,
        base_model: str | None,
        quantity: int,
        cached: bool = False,
    ) -> None:
        """Count `quantity` (tokens, or checkpoints) of `kind` in the current hour."""
        if quantity <= 0:
            return
        with self._lock:
            self._db.execute(
                "INSERT INTO usage VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (hour, session_id, base_model, kind, cached) "
                "DO UPDATE SET quantity = quantity + excluded.quantity",
                (
                    int(self.clock() // HOUR_S),
                    session_id or "",
                    base_model or "",
                    kind,
                    int(cached),
                    int(quantity),
                ),
            )

    def checkpoint_saved(self, record: StoredCheckpoint, base_model: str | None) -> None:
        """A persisted checkpoint: one checkpoint operation, and storage from now on (an overwritten
        checkpoint of the same path stops being stored now)."""
        session = session_of_run(record.run_id)
        now = self.clock()
        with self._lock:
            self._db.execute(
                "UPDATE stored SET deleted = ? WHERE tinker_path = ? AND deleted IS NULL",
                (now, record.tinker_path),
            )
            self._db.execute(
                _INSERT_STORED,
                (record.tinker_path, session, base_model or "", int(record.size_bytes), now),
            )
        self.add("checkpoint", session, base_model, 1)

    def checkpoints_deleted(self, tinker_paths: Iterable[str], at: float | None = None) -> None:
        when = self.clock() if at is None else at
        with self._lock:
            self._db.executemany(
                "UPDATE stored SET deleted = ? WHERE tinker_path = ? AND deleted IS NULL",
                [(when, path) for path in tinker_paths],
            )

    def adopt(
        self, records: Iterable[StoredCheckpoint], base_of: Callable[[str], str | None]
    ) -> None:
        """Reconcile storage with the checkpoints on disk: count the ones saved before this ledger
        existed (from their save time), close the ones whose files are gone."""
        on_disk = {record.tinker_path: record for record in records}
        with self._lock:
            live = {
                row[0]
                for row in self._db.execute("SELECT tinker_path FROM stored WHERE deleted IS NULL")
            }
            now = self.clock()
            self._db.executemany(
                "UPDATE stored SET deleted = ? WHERE tinker_path = ? AND deleted IS NULL",
                [(now, path) for path in live - on_disk.keys()],
            )
            self._db.executemany(
                _INSERT_STORED,
                [
                    (
                        path,
                        session_of_run(r.run_id),
                        base_of(r.run_id) or "",
                        int(r.size_bytes),
                        _created(r),
                    )
                    for path, r in on_disk.items()
                    if path not in live
                ],
            )

    # -- the billing API -----------------------------------------------------------------------

    def usage_events(self, starting_on: datetime, ending_before: datetime) -> dict[str, object]:
        """`BillingUsageResponse` JSON for the hours in [starting_on, ending_before)."""
        first, end = (
            int(starting_on.timestamp()) // HOUR_S,
            int(ending_before.timestamp()) // HOUR_S,
        )
        with self._lock:
            counted = self._db.execute(
                """SELECT hour, session_id, base_model, kind, cached, quantity FROM usage
                   WHERE hour >= ? AND hour < ?""",
                (first, end),
            ).fetchall()
            stored = self._db.execute(
                "SELECT session_id, base_model, size_bytes, created, deleted FROM stored "
                "WHERE created < ? AND (deleted IS NULL OR deleted > ?)",
                (end * HOUR_S, first * HOUR_S),
            ).fetchall()
            sessions = dict(
                self._db.execute("SELECT session_id, project_id FROM sessions").fetchall()
            )
        rows = [
            (hour, session, base, _event_info(kind, cached, qty))
            for hour, session, base, kind, cached, qty in counted
        ]
        rows += self._storage_rows(stored, first, end)
        rows.sort(key=lambda row: (row[0], -_quantity(row[3])))
        events = [
            types.BillingUsageEvent(
                bucket_start=datetime.fromtimestamp(hour * HOUR_S, UTC),
                bucket_end=datetime.fromtimestamp((hour + 1) * HOUR_S, UTC),
                base_model=base or None,
                session_id=session or None,
                project_id=sessions.get(session) if session else None,
                event_info=info,
            )
            for hour, session, base, info in rows
        ]
        named = sorted({event.session_id for event in events if event.session_id})
        response = types.BillingUsageResponse(
            data=events,
            sessions={
                sid: types.BillingUsageSession(user_metadata=self._metadata(sid)) for sid in named
            },
        )
        return response.model_dump(mode="json")

    def _storage_rows(self, stored: list[tuple], first: int, end: int) -> list[tuple]:
        now = self.clock()
        hours: dict[tuple[int, str, str], float] = defaultdict(float)
        for session, base, size, created, deleted in stored:
            until = min(deleted if deleted is not None else now, now)
            for hour in range(
                max(first, int(created // HOUR_S)), min(end, math.ceil(until / HOUR_S))
            ):
                overlap = min(until, (hour + 1) * HOUR_S) - max(created, hour * HOUR_S)
                if overlap > 0:
                    hours[(hour, session, base)] += size / GB * overlap / HOUR_S
        return [
            (hour, session, base, types.StorageBillingEvent(gigabyte_hours=gb_hours))
            for (hour, session, base), gb_hours in hours.items()
        ]

    def _metadata(self, session_id: str) -> dict[str, str] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT user_metadata_json FROM sessions WHERE session_id = ?", (session_id,)
            ).fetchone()
        return json.loads(row[0]) if row and row[0] else None

    def project_of(self, session_id: str) -> str | None:
        with self._lock:
            row = self._db.execute(
                "SELECT project_id FROM sessions WHERE session_id = ?", (session_id,)
            ).fetchone()
        return row[0] if row else None

    def current_storage(
        self, records: Iterable[StoredCheckpoint], project_id: str | None
    ) -> dict[str, object]:
        """`CurrentCheckpointStorageUsageResponse` JSON: usable checkpoints on disk, by project."""
        groups: dict[str | None, list[int]] = defaultdict(list)
        for record in records:
            groups[self.project_of(session_of_run(record.run_id))].append(int(record.size_bytes))
        items = [
            types.CurrentCheckpointStorageUsageItem(
                project_id=project,
                checkpoint_count=len(sizes),
                size_bytes=sum(sizes),
                size_gigabytes=sum(sizes) / GB,
            )
            for project, sizes in sorted(groups.items(), key=lambda item: item[0] or "")
            if project_id is None or project == project_id
        ]
        return types.CurrentCheckpointStorageUsageResponse(data=items).model_dump(mode="json")


def _event_info(kind: str, cached: int, quantity: int) -> types.BillingEventInfo:
    if kind == "training":
        return types.TrainingBillingEvent(token_count=quantity)
    if kind == "sampling_prefill":
        return types.SamplingPrefillBillingEvent(cached=bool(cached), token_count=quantity)
    if kind == "sampling_sample":
        return types.SamplingSampleBillingEvent(token_count=quantity)
    return types.CheckpointBillingEvent(count=quantity)


def _quantity(info: types.BillingEventInfo) -> float:
    if isinstance(info, types.StorageBillingEvent):
        return info.gigabyte_hours
    return float(info.count if isinstance(info, types.CheckpointBillingEvent) else info.token_count)


def usage_window(params: dict[str, str], now: float) -> tuple[datetime, datetime]:
    """The query's [starting_on, ending_before) as the SDK's request type validates it, plus the
    rules its docstring states: UTC hours, start not in the future, at most 14 days."""
    where = "billing/usage/events"
    for name in ("starting_on", "ending_before"):
        if not params.get(name):
            raise InvalidRequestError(
                f"{where}: query parameter {name} is missing ({_HOUR_EXAMPLE})"
            )
    try:
        request = types.GetBillingUsageRequest.model_validate(
            {"starting_on": params["starting_on"], "ending_before": params["ending_before"]}
        )
    except pydantic.ValidationError as exc:
        field = ".".join(str(p) for p in exc.errors()[0].get("loc", ())) or "query"
        raise InvalidRequestError(f"{where}: {field} is not a time ({_HOUR_EXAMPLE})") from None
    start, end = (_utc(request.starting_on), _utc(request.ending_before))
    for name, moment in (("starting_on", start), ("ending_before", end)):
        if moment.minute or moment.second or moment.microsecond:
            raise InvalidRequestError(
                f"{where}: {name} {moment.isoformat()} is not on a UTC hour ({_HOUR_EXAMPLE})"
            )
    if start.timestamp() > now:
        raise InvalidRequestError(f"{where}: starting_on {start.isoformat()} is in the future")
    if not start < end <= start + MAX_WINDOW:
        raise InvalidRequestError(
            f"{where}: ending_before must be after starting_on and at most 14 days later; got "
            f"{start.isoformat()} to {end.isoformat()}"
        )
    return start, end


def _utc(moment: datetime) -> datetime:
    """A time without an offset is read as UTC (the API's buckets are UTC hours)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
