"""`Ledger`: the registry's connection, clock and transactions, and the rows every change writes.

`Registry` (`_store.py`) owns one `Ledger` and hands it to `_governance`, which changes statuses;
`_compare` and `_export` only read, so they get the connection. All three sit above this module
and below `Registry`: they never import it or reach into its members, so the dependency runs one
way. Inside `write()`, every row (model, status history, audit log) carries one timestamp.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime

from tinker_chief.errors import RegistryError
from tinker_chief.registry import _db
from tinker_chief.registry._rows import dumps
from tinker_chief.registry._scrub import scrub_text

Clock = Callable[[], datetime]


def stamp_of(moment: datetime) -> str:
    """A timezone-aware moment as the registry's UTC timestamp text."""
    if moment.tzinfo is None:
        raise RegistryError(
            f"timestamp {moment.isoformat()} has no timezone; pass an aware datetime"
        )
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Ledger:
    """One open registry connection with its clock; `write()` is one `BEGIN IMMEDIATE`
    transaction."""

    def __init__(self, db: sqlite3.Connection, clock: Clock | None = None) -> None:
        self.db = db
        self._clock = clock or (lambda: datetime.now(UTC))
        self._stamp: str | None = None

    def now(self) -> str:
        """UTC timestamp; inside a write, the transaction's one timestamp for all its rows."""
        if self._stamp is not None:
            return self._stamp
        return stamp_of(self._clock())

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction whose rows (model, history, audit) share one timestamp."""
        with _db.write(self.db) as db:
            self._stamp = self.now()
            try:
                yield db
            finally:
                self._stamp = None

    def read(self) -> AbstractContextManager[sqlite3.Connection]:
        """A consistent snapshot (inside `write()`, that transaction)."""
        return _db.read(self.db)

    def history(
        self,
        model_id: int,
        from_status: str | None,
        to_status: str,
        actor: str,
        reason: str,
        forced: bool,
    ) -> None:
        self.db.execute(
            "INSERT INTO status_history "
            "(model_id, from_status, to_status, at, actor, reason, forced) "
            "VALUES (?,?,?,?,?,?,?)",
            (
                model_id,
                from_status,
                to_status,
                self.now(),
                scrub_text(actor),
                scrub_text(reason),
                int(forced),
            ),
        )

    def audit(
        self, actor: str, command: str, target: str | None, details: Mapping[str, object]
    ) -> None:
        self.db.execute(
            "INSERT INTO audit_log (at, actor, command, target, details_json) VALUES (?,?,?,?,?)",
            (self.now(), scrub_text(actor), command, target, dumps(details)),
        )
