"""Opening the registry's SQLite file safely, migrating it, and running transactions.

`connect()` refuses (never overwrites) a missing file when `create=False`, a file that is not
SQLite, a SQLite file that is not a chief registry, and a registry written by a newer schema.
Connections run in autocommit mode so that `write()` can open `BEGIN IMMEDIATE` itself: the
write lock is taken up front, so two processes never both read-then-write stale state, and
`busy_timeout` makes the second wait instead of failing at once.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tinker_chief.errors import RegistryError
from tinker_chief.registry._migrations import MIGRATIONS

BUSY_TIMEOUT_MS = 30_000
_SQLITE_MAGIC = b"SQLite format 3\x00"


def connect(path: Path, *, create: bool) -> sqlite3.Connection:
    """Open (and, with `create`, make) the registry at `path`, migrated to this code's schema."""
    _check_file(path, create=create)
    if create:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RegistryError(f"cannot create the registry's directory {path.parent}: {exc.strerror}") from exc
    try:
        db = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    except sqlite3.Error as exc:
        raise RegistryError(f"cannot open registry {path}: {exc}") from exc
    try:
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        db.execute("PRAGMA foreign_keys = ON")
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: durable across process crashes
        migrate(db, path)
    except sqlite3.OperationalError as exc:  # permissions, missing directory, disk full
        db.close()
        raise RegistryError(f"cannot use registry {path}: {exc}; it was left untouched") from exc
    except sqlite3.DatabaseError as exc:
        db.close()
        raise RegistryError(
            f"registry {path} is not a readable SQLite database ({exc}); it was left untouched. "
            "Restore it from a backup, or point --registry / CHIEF_REGISTRY at another file."
        ) from exc
    except BaseException:
        db.close()
        raise
    return db


def _check_file(path: Path, *, create: bool) -> None:
    if path.is_dir():
        raise RegistryError(f"registry path {path} is a directory; expected a .db file")
    if not path.exists():
        if not create:
            raise RegistryError(
                f"registry {path} does not exist; record a model first (chief train / chief eval) "
                "or pass --registry PATH"
            )
        return
    with path.open("rb") as handle:
        header = handle.read(len(_SQLITE_MAGIC))
    if header and header != _SQLITE_MAGIC:
        raise RegistryError(
            f"registry {path} is not an SQLite database (corrupt or another kind of file); "
            "it was left untouched"
        )


def migrate(db: sqlite3.Connection, path: Path) -> None:
    """Apply missing migrations in order, each with its record, in one write transaction."""
    known = [name for name, _ in MIGRATIONS]
    with write(db):
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "_chief_migrations" not in tables and tables:
            raise RegistryError(
                f"{path} is an SQLite database but not a chief registry (tables: "
                f"{', '.join(sorted(tables))}); it was left untouched"
            )
        db.execute(
            "CREATE TABLE IF NOT EXISTS _chief_migrations (name TEXT PRIMARY KEY, applied_at TEXT)"
        )
        applied = [row[0] for row in db.execute("SELECT name FROM _chief_migrations ORDER BY rowid")]
        unknown = [name for name in applied if name not in known]
        if unknown:
            raise RegistryError(
                f"registry {path} has schema version {len(applied)} (migrations {unknown} are "
                f"unknown here; this tinker-chief knows {len(known)}): it was written by a newer "
                "tinker-chief. Upgrade tinker-chief; the file was left untouched."
            )
        for name, fn in MIGRATIONS:
            if name not in applied:
                try:
                    fn(db)
                except sqlite3.IntegrityError as exc:  # data the new schema forbids: say so, change nothing
                    raise RegistryError(
                        f"registry {path}: migration {name} cannot be applied ({exc}); the file was "
                        f"left at schema version {len(applied)}"
                    ) from exc
                db.execute(
                    "INSERT INTO _chief_migrations (name, applied_at) VALUES (?, datetime('now'))",
                    (name,),
                )


def schema_version(db: sqlite3.Connection) -> int:
    return int(db.execute("SELECT count(*) FROM _chief_migrations").fetchone()[0])


@contextmanager
def write(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction: `BEGIN IMMEDIATE`, commit on success, roll back on any error."""
    try:
        db.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        raise RegistryError(f"registry is busy (another process holds the write lock): {exc}") from exc
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


@contextmanager
def read(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A consistent snapshot across several SELECTs (WAL readers never block writers)."""
    if db.in_transaction:  # already inside write(): that transaction is the snapshot
        yield db
        return
    db.execute("BEGIN")
    try:
        yield db
    finally:
        db.execute("COMMIT")
