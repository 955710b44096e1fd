"""Opening the registry's SQLite file safely, migrating it, and running transactions.

`connect()` refuses (never overwrites, never writes to) a missing file when `create=False`, an
empty (0-byte) file, a file that is not SQLite, a SQLite file that is not a chief registry, a
damaged one (`PRAGMA quick_check`, about 1 ms per MB) and a registry written by a newer schema:
every check runs before anything could write. A new registry is built under a temporary name
and linked into place, so a registry file of ours is never empty or half-made; a writable open
removes the temporary files a killed builder left (`_remove_abandoned_staging`). `read_only`
opens the file `mode=ro`, so listing works where the file or its directory cannot be written.
Connections run in autocommit mode so that `write()` can open `BEGIN IMMEDIATE` itself: the
write lock is taken up front, so two processes never both read-then-write stale state, and
`busy_timeout` makes the second wait instead of failing at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tinker_chief.errors import RegistryError
from tinker_chief.registry._migrations import MIGRATIONS

BUSY_TIMEOUT_MS = 30_000
_SQLITE_MAGIC = b"SQLite format 3\x00"
# Building a registry takes milliseconds: a staging file this old is not being built, even when
# the pid in its name runs (a reused pid, or a builder from before builders locked their file).
STAGING_GRACE_S = 600.0
_SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


def connect(path: Path, *, create: bool, read_only: bool = False) -> sqlite3.Connection:
    """Open (and, with `create`, make) the registry at `path`, migrated to this code's schema.

    With `read_only` nothing is written: the connection is `mode=ro` (its writes fail). A
    registry at an older schema is first migrated through a writable open, once.
    """
    if not read_only:
        _remove_abandoned_staging(path)
    if not _check_file(path, create=create):
        _create(path)
    if read_only:
        db = _open(path, read_only=True)
        with _refusing(db, path):
            pending = _inspect(db, path)
        if not pending:
            return db
        db.close()
    db = _open(path, read_only=False)
    with _refusing(db, path):
        # Identity, integrity and version first: a foreign file is never touched.
        pending = _inspect(db, path)
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: durable across process crashes
        if pending:
            migrate(db, path)
    return db


def _check_file(path: Path, *, create: bool) -> bool:
    """True when `path` holds an SQLite file to open, False when a new registry is to be made."""
    if path.is_dir():
        raise RegistryError(f"registry path {path} is a directory; expected a .db file")
    if not path.exists():
        if not create:
            raise RegistryError(
                f"registry {path} does not exist; record a model first (chief train / chief eval) "
                "or pass --registry PATH"
            )
        return False
    try:
        with path.open("rb") as handle:
            header = handle.read(len(_SQLITE_MAGIC))
    except OSError as exc:
        raise RegistryError(f"cannot read registry {path}: {exc.strerror}") from None
    if not header:
        raise RegistryError(
            f"registry {path} is empty (0 bytes): it was truncated or is not a registry (chief "
            "never leaves one empty); it was left untouched. Restore it from a backup, or delete "
            "it to start a new registry."
        )
    if header != _SQLITE_MAGIC:
        raise RegistryError(
            f"registry {path} is not an SQLite database (corrupt or another kind of file); "
            "it was left untouched"
        )
    return True


def _create(path: Path) -> None:
    """Build a new, migrated registry under a temporary name, then link it to `path`.

    Of two processes creating the same registry at once, the first link wins and both use it.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RegistryError(
            f"cannot create the registry's directory {path.parent}: {exc.strerror}"
        ) from exc
    try:
        staging, lock = _new_staging(path)
    except OSError as exc:
        raise RegistryError(f"cannot create registry {path}: {exc}") from exc
    try:
        db = sqlite3.connect(staging, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode = WAL")
            migrate(db, staging)
        finally:
            db.close()  # the last close checkpoints the WAL into the file
        try:
            os.link(staging, path)
        except FileExistsError:
            pass  # another process made it first: use theirs
        except OSError:  # a filesystem without hard links: rename, unless someone got there first
            if not path.exists():
                os.replace(staging, path)
    except (OSError, sqlite3.Error) as exc:
        raise RegistryError(f"cannot create registry {path}: {exc}") from exc
    finally:
        try:
            staging.unlink(missing_ok=True)
        finally:
            os.close(lock)  # only now: while it is locked, no other process removes it


def _staging_pattern(path: Path) -> re.Pattern[str]:
    """`.registry.db.<pid>-<8 hex>.new`, where `_create` builds `path`, and SQLite's side files."""
    staging = rf"\.{re.escape(path.name)}\.(?P<pid>\d+)-[0-9a-f]{{8}}\.new"
    return re.compile(rf"(?P<staging>{staging})(?P<side>-\w+)?")


def _new_staging(path: Path) -> tuple[Path, int]:
    """A new, empty staging file for `path` and a descriptor holding an flock on it.

    The kernel drops the lock when this process dies, however it dies: that is how a later open
    tells an abandoned staging file from one being built (`_remove_abandoned_staging`).
    """
    for _ in range(3):
        staging = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.new")
        lock = os.open(staging, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
        except OSError:  # no locks on this filesystem: build unlocked (its files are then kept)
            return staging, lock
        if _same_file(lock, staging):  # not removed between creating and locking it
            return staging, lock
        os.close(lock)
    raise RegistryError(f"cannot create registry {path}: its temporary file kept being removed")


def _same_file(fd: int, path: Path) -> bool:
    try:
        named = path.stat()
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)


def _remove_abandoned_staging(path: Path) -> None:
    """Remove the staging files (and their SQLite `-wal`/`-shm`/`-journal`) of builders of
    `path` that were killed; never one another process is building.

    A staging file is abandoned when no process holds its flock (the builder does until it has
    removed it) and, for files from builders that did not lock, when the pid in its name no
    longer runs or it is older than `STAGING_GRACE_S`. Best effort: whatever cannot be checked
    or removed is left as it was.
    """
    pattern = _staging_pattern(path)
    try:
        found = [m for e in path.parent.iterdir() if (m := pattern.fullmatch(e.name)) is not None]
    except OSError:
        return
    for match in found:
        if match["side"] is None:
            _remove_if_abandoned(path.parent / match["staging"], int(match["pid"]))
    for match in found:  # side files whose staging file is gone (SQLite makes them after it)
        if match["side"] in _SQLITE_SIDE_FILES and not (path.parent / match["staging"]).exists():
            with contextlib.suppress(OSError):
                (path.parent / match[0]).unlink(missing_ok=True)


def _remove_if_abandoned(staging: Path, pid: int) -> None:
    try:
        fd = os.open(staging, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return  # already gone, or not a file of ours
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError: its builder is alive
        if _pid_running(pid) and time.time() - os.fstat(fd).st_mtime < STAGING_GRACE_S:
            return  # unlocked, but maybe a builder that does not lock: not yet abandoned
        if _same_file(fd, staging):  # we hold the lock: no builder can still be using it
            for side in _SQLITE_SIDE_FILES:
                Path(f"{staging}{side}").unlink(missing_ok=True)
            staging.unlink()
    except OSError:
        return  # locked by its builder, or no locks here: keep it
    finally:
        os.close(fd)


def _pid_running(pid: int) -> bool:
    if not 0 < pid < 2**31:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it runs, as another user
        return True
    return True


def _open(path: Path, *, read_only: bool) -> sqlite3.Connection:
    try:
        db = (
            _connect_read_only(path)
            if read_only
            else sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
        )
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        db.execute("PRAGMA foreign_keys = ON")
    except sqlite3.Error as exc:
        raise RegistryError(f"cannot open registry {path}: {exc}") from exc
    return db


def _connect_read_only(path: Path) -> sqlite3.Connection:
    uri = path.resolve().as_uri()
    db = sqlite3.connect(
        f"{uri}?mode=ro", uri=True, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000
    )
    try:
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return db
    except sqlite3.OperationalError:
        db.close()
        if not Path(f"{path}-wal").exists():
            # A WAL file in a directory no one can write: SQLite cannot make its -shm file, and no
            # writer can make a -wal file, so the file cannot change while it is read.
            return sqlite3.connect(f"{uri}?mode=ro&immutable=1", uri=True, isolation_level=None)
        raise


@contextmanager
def _refusing(db: sqlite3.Connection, path: Path) -> Iterator[None]:
    """Close `db` on any error; SQLite's own errors become a RegistryError naming the file."""
    try:
        yield
    except sqlite3.OperationalError as exc:  # permissions, missing directory, disk full
        db.close()
        raise RegistryError(f"cannot use registry {path}: {exc}; it was left untouched") from exc
    except sqlite3.DatabaseError as exc:
        db.close()
        raise _damaged(path, str(exc)) from exc
    except BaseException:
        db.close()
        raise


def _damaged(path: Path, detail: str) -> RegistryError:
    return RegistryError(
        f"registry {path} is damaged or not a readable SQLite database ({detail}); it was left "
        "untouched. Keep a copy, then restore it from a backup or recover what is readable "
        f"(`sqlite3 {path} .recover | sqlite3 recovered.db`), or point --registry / "
        "CHIEF_REGISTRY at another file."
    )


def _inspect(db: sqlite3.Connection, path: Path) -> list[str]:
    """Check the file is an intact chief registry this code can read; its pending migrations."""
    problems = [row[0] for row in db.execute("PRAGMA quick_check").fetchall()]
    if problems != ["ok"]:
        lines = [
            line for p in problems for line in p.splitlines() if line and not line.startswith("***")
        ]
        raise _damaged(path, f"quick_check: {lines[0] if lines else problems[0]}")
    return _pending(db, path)


def _pending(db: sqlite3.Connection, path: Path) -> list[str]:
    """Names of the migrations `path` lacks; refuses a foreign or newer file."""
    known = [name for name, _ in MIGRATIONS]
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if "_chief_migrations" not in tables:
        if tables:
            raise RegistryError(
                f"{path} is an SQLite database but not a chief registry (tables: "
                f"{', '.join(sorted(tables))}); it was left untouched"
            )
        return known
    applied = [row[0] for row in db.execute("SELECT name FROM _chief_migrations ORDER BY rowid")]
    unknown = [name for name in applied if name not in known]
    if unknown:
        raise RegistryError(
            f"registry {path} has schema version {len(applied)} (migrations {unknown} are "
            f"unknown here; this tinker-chief knows {len(known)}): it was written by a newer "
            "tinker-chief. Upgrade tinker-chief; the file was left untouched."
        )
    return [name for name in known if name not in applied]


def migrate(db: sqlite3.Connection, path: Path) -> None:
    """Apply missing migrations in order, each with its record, in one write transaction."""
    with write(db):
        # Again under the write lock: another process may have migrated.
        pending = _pending(db, path)
        db.execute(
            "CREATE TABLE IF NOT EXISTS _chief_migrations (name TEXT PRIMARY KEY, applied_at TEXT)"
        )
        for name, fn in MIGRATIONS:
            if name in pending:
                try:
                    fn(db)
                except sqlite3.IntegrityError as exc:
                    # Data the new schema forbids: say so, change nothing.
                    raise RegistryError(
                        f"registry {path}: migration {name} cannot be applied ({exc}); the file "
                        f"was left at schema version {len(MIGRATIONS) - len(pending)}"
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
        raise RegistryError(
            f"registry is busy (another process holds the write lock): {exc}"
        ) from exc
    try:
        yield db
    except sqlite3.OperationalError as exc:  # a read-only file or directory, a full disk
        _rollback(db)
        where = db.execute("PRAGMA database_list").fetchone()[2]
        raise RegistryError(f"cannot change registry {where}: {exc}; nothing was written") from exc
    except BaseException:
        _rollback(db)
        raise
    db.execute("COMMIT")


def _rollback(db: sqlite3.Connection) -> None:
    if db.in_transaction:  # some errors (a full disk) have already rolled SQLite back
        db.execute("ROLLBACK")


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
