"""Training runs and checkpoints on disk under `--state-dir`; survives engine restarts.

Layout::

    <state_dir>/runs/<run_id>/run.json                  run metadata (base model, LoRA)
    <state_dir>/runs/<run_id>/weights/<name>/           save_state: PEFT adapter + optimizer
    <state_dir>/runs/<run_id>/weights/<name>.json       its metadata (written last)
    <state_dir>/runs/<run_id>/sampler_weights/<name>/   save_weights_for_sampler: PEFT adapter
    <state_dir>/runs/<run_id>/external_weights/<name>/  save_weights_external: PEFT adapter
                                                        (downloads)

    <state_dir>/expired-checkpoints.json                tombstones of deleted expired checkpoints
    <state_dir>/billing.db                              usage counters (billing_ledger.py)

A checkpoint directory is filled in a hidden staging directory and renamed into place; its
metadata JSON is written last and is the commit marker, so a crash never lists a half-written
checkpoint. Names are validated (no path traversal); an existing name is kept unless the
request says overwrite.

Checkpoint TTLs: `expires_at` (ISO 8601, UTC) lives in the metadata JSON. From that instant
the checkpoint is expired: listings leave it out and requests naming it fail with
`CheckpointExpiredError` saying when it expired. `delete_expired` (the engine's deletion pass,
see `expiry.py`) removes expired checkpoints that are not in use: not leased by a request in
flight (`lease`) and not named by the caller's `in_use` set (samplers loaded from them). A
bounded list of tombstones keeps "expired at ..." answerable after the files are gone. The
clock is injectable so tests can move time without sleeping. An engine killed mid-way (during a
deletion pass, a save or a delete) leaves hidden or uncommitted directories behind;
`remove_leftovers` removes them when the next engine starts.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from tinker_chief.engine.backend import LoraSettings
from tinker_chief.engine.server.http_errors import (
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    shown,
)
from tinker_chief.errors import EngineError

CheckpointKind = Literal["weights", "sampler_weights", "external_weights"]
CHECKPOINT_TYPE: dict[str, str] = {
    "weights": "training",
    "sampler_weights": "sampler",
    "external_weights": "external",
}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9:._-]{0,127}$")
_META_SUFFIX = ".json"
# Tinker's own bounds for ttl_seconds (SDK docstrings: "1 hour (3600) to 10 years"), so a script
# that works here works on the cloud; 10 years counted with leap days.
MIN_TTL_SECONDS = 3600
MAX_TTL_SECONDS = 315_576_000
MAX_TOMBSTONES = 1000  # the most recent deletions whose "expired at" stays answerable
_TOMBSTONES = "expired-checkpoints.json"

Clock = Callable[[], float]  # seconds since the epoch, like time.time


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat()


def _timestamp(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


class CheckpointExpiredError(NotFoundError):
    """A request named a checkpoint whose TTL has run out (HTTP 404, like any missing one)."""


def validate_ttl(ttl_seconds: object, where: str = "ttl_seconds") -> int | None:
    """None (keep forever) or a whole number of seconds within Tinker's bounds."""
    if ttl_seconds is None:
        return None
    if (
        isinstance(ttl_seconds, bool)
        or not isinstance(ttl_seconds, int)
        or not MIN_TTL_SECONDS <= ttl_seconds <= MAX_TTL_SECONDS
    ):
        raise InvalidRequestError(
            f"{where} must be a whole number of seconds between {MIN_TTL_SECONDS} (1 hour) and "
            f"{MAX_TTL_SECONDS} (10 years), or None to keep the checkpoint; got {ttl_seconds!r}"
        )
    return ttl_seconds


@dataclass
class RunRecord:
    run_id: str
    base_model: str
    lora: dict  # LoraSettings fields
    created: str = field(default_factory=now_iso)
    last_request_time: str = field(default_factory=now_iso)
    user_metadata: dict[str, str] | None = None

    def lora_settings(self) -> LoraSettings:
        return LoraSettings(**self.lora)


@dataclass
class StoredCheckpoint:
    run_id: str
    kind: CheckpointKind
    name: str
    created: str
    size_bytes: int
    user_metadata: dict[str, str] | None = None
    expires_at: str | None = None  # ISO 8601 UTC; None = never expires

    @property
    def checkpoint_id(self) -> str:
        return f"{self.kind}/{self.name}"

    @property
    def tinker_path(self) -> str:
        return f"tinker://{self.run_id}/{self.kind}/{self.name}"

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and _timestamp(self.expires_at) <= now


class CheckpointLease:
    """A request's hold on a checkpoint it will read: the deletion pass skips it until released."""

    def __init__(
        self, record: StoredCheckpoint, directory: Path, release: Callable[[], None]
    ) -> None:
        self.record, self.directory = record, directory
        self._release: Callable[[], None] | None = release

    def release(self) -> None:
        """Idempotent: the first call lets go, later ones do nothing."""
        release, self._release = self._release, None
        if release is not None:
            release()

    @contextmanager
    def reading(self, *, keep: bool = False) -> Iterator[Path]:
        """The checkpoint's directory, for the backend to read; released afterwards unless `keep`
        (a sampler holds its checkpoint while it is registered), and on any error. An
        `EngineError` raised meanwhile (a damaged checkpoint: no adapter files, no optimizer
        state, unreadable metadata) names the checkpoint by its tinker:// path instead of its
        place under the state directory, which is no client's business."""
        try:
            yield self.directory
        except BaseException as error:
            self.release()
            if isinstance(error, EngineError):
                error.args = tuple(
                    arg.replace(str(self.directory), self.record.tinker_path)
                    if isinstance(arg, str)
                    else arg
                    for arg in error.args
                )
            raise
        if not keep:
            self.release()


def validate_name(name: str | None, what: str = "checkpoint name") -> str:
    if not isinstance(name, str) or not _NAME.match(name) or ".." in name:
        raise InvalidRequestError(
            f"invalid {what} {shown(name)}: expected 1-128 characters of letters, digits, '.', "
            "'_' or '-', starting with a letter or digit (no '/' or '..')"
        )
    return name


def validate_run_id(run_id: str) -> str:
    if not isinstance(run_id, str) or not _RUN_ID.match(run_id) or ".." in run_id:
        raise InvalidRequestError(f"invalid training run id {shown(run_id)}")
    return run_id


def parse_tinker_path(path: str) -> tuple[str, CheckpointKind, str]:
    """`tinker://<run>/<weights|sampler_weights|external_weights>/<name>` -> (run, kind, name),
    validated."""
    if not isinstance(path, str) or not path.startswith("tinker://"):
        raise InvalidRequestError(
            f"invalid checkpoint path {shown(path)}: expected tinker://<run>/weights/<name> "
            "or tinker://<run>/sampler_weights/<name>"
        )
    parts = path[len("tinker://") :].split("/")
    if len(parts) != 3 or parts[1] not in CHECKPOINT_TYPE:
        raise InvalidRequestError(
            f"invalid checkpoint path {shown(path)}: expected tinker://<run>/weights/<name> "
            "or tinker://<run>/sampler_weights/<name>"
        )
    return validate_run_id(parts[0]), parts[1], validate_name(parts[2])  # type: ignore[return-value]


class CheckpointStore:
    def __init__(self, root: Path, clock: Clock = time.time) -> None:
        self.root = Path(root)
        self.clock = clock
        (self.root / "runs").mkdir(parents=True, exist_ok=True)
        # Leases are taken on the event loop and the deletion pass runs in a worker thread: one
        # lock orders them, and the commit points of saves, deletions and TTL changes.
        self._lock = threading.RLock()
        self._leases: Counter[str] = Counter()
        # Told the tinker paths of deleted checkpoints and when (the billing ledger stops their
        # storage).
        self.on_delete: Callable[[list[str], float], None] = lambda paths, at: None

    # -- runs --------------------------------------------------------------------------------

    def _run_dir(self, run_id: str) -> Path:
        return self.root / "runs" / validate_run_id(run_id)

    def save_run(self, record: RunRecord) -> None:
        directory = self._run_dir(record.run_id)
        directory.mkdir(parents=True, exist_ok=True)
        _write_json(directory / "run.json", asdict(record))

    def get_run(self, run_id: str) -> RunRecord:
        path = self._run_dir(run_id) / "run.json"
        if not path.is_file():
            raise NotFoundError(f"unknown training run {run_id!r}")
        return RunRecord(**json.loads(path.read_text()))

    def touch_run(self, run_id: str) -> None:
        record = self.get_run(run_id)
        record.last_request_time = now_iso()
        self.save_run(record)

    def list_runs(self) -> list[RunRecord]:
        runs = []
        for path in (self.root / "runs").glob("*/run.json"):
            try:
                runs.append(RunRecord(**json.loads(path.read_text())))
            except (OSError, ValueError, TypeError):
                continue  # a damaged run file hides that run, it does not break the listing
        return sorted(runs, key=lambda r: r.created, reverse=True)

    # -- checkpoints -------------------------------------------------------------------------

    def save_checkpoint(
        self,
        run_id: str,
        kind: CheckpointKind,
        name: str,
        overwrite: bool,
        write: Callable[[Path], None],
        user_metadata: dict[str, str] | None = None,
        ttl_seconds: int | None = None,
    ) -> StoredCheckpoint:
        """Create a checkpoint: `write` fills an empty directory, which then becomes visible."""
        name = validate_name(name)
        ttl_seconds = validate_ttl(ttl_seconds)
        parent = self._run_dir(run_id) / kind
        parent.mkdir(parents=True, exist_ok=True)
        target, meta = parent / name, parent / f"{name}{_META_SUFFIX}"
        if meta.exists() and not overwrite:
            raise ConflictError(
                f"checkpoint tinker://{run_id}/{kind}/{name} already exists; "
                "pass overwrite=True to replace it or choose another name"
            )
        staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=parent))
        try:
            write(staging)
            with self._lock:
                meta.unlink(missing_ok=True)
                if target.exists():
                    shutil.rmtree(target)
                os.rename(staging, target)
                now = self.clock()
                expires_at = None if ttl_seconds is None else iso(now + ttl_seconds)
                record = StoredCheckpoint(
                    run_id, kind, name, iso(now), _size(target), user_metadata, expires_at
                )
                _write_json(meta, asdict(record))
                self._forget_tombstone(record.tinker_path)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        return record

    def resolve(
        self, tinker_path: str, *, allow_expired: bool = False
    ) -> tuple[StoredCheckpoint, Path]:
        """The checkpoint's record and directory. An expired one raises `CheckpointExpiredError`
        unless `allow_expired` (a user that already held it, e.g. a sampler reloading its
        adapter)."""
        run_id, kind, name = parse_tinker_path(tinker_path)
        meta = self._run_dir(run_id) / kind / f"{name}{_META_SUFFIX}"
        try:
            record = StoredCheckpoint(**json.loads(meta.read_text()))
        except FileNotFoundError:
            raise self._missing(tinker_path, run_id) from None
        if not allow_expired and record.expired(self.clock()):
            raise CheckpointExpiredError(
                f"checkpoint {tinker_path} expired at {record.expires_at} (its ttl_seconds ran "
                "out) and can no longer be used; save a new checkpoint (ttl_seconds=None keeps "
                "one forever)"
            )
        return record, meta.parent / name

    def lease(self, tinker_path: str) -> CheckpointLease:
        """Resolve an unexpired checkpoint and keep the deletion pass off it until released."""
        with self._lock:
            record, directory = self.resolve(tinker_path)
            self._leases[record.tinker_path] += 1
        return CheckpointLease(record, directory, lambda: self._unlease(record.tinker_path))

    def _unlease(self, tinker_path: str) -> None:
        with self._lock:
            self._leases[tinker_path] -= 1
            if self._leases[tinker_path] <= 0:
                del self._leases[tinker_path]

    def _missing(self, tinker_path: str, run_id: str) -> NotFoundError:
        if (stone := self._tombstones().get(tinker_path)) is not None:
            return CheckpointExpiredError(
                f"checkpoint {tinker_path} expired at {stone.get('expired_at')} and was deleted at "
                f"{stone.get('deleted_at')} (its ttl_seconds ran out)"
            )
        if not (self._run_dir(run_id) / "run.json").is_file():
            return NotFoundError(
                f"unknown checkpoint {tinker_path}: there is no training run {run_id!r} on this "
                "engine"
            )
        known = [c.tinker_path for c in self.list_checkpoints(run_id)]
        listing = ", ".join(known) if known else "none"
        return NotFoundError(
            f"unknown checkpoint {tinker_path}: checkpoints of run {run_id!r} are: {listing}"
        )

    def _records(self, run_id: str) -> list[StoredCheckpoint]:
        """Every committed checkpoint of the run, expired ones included."""
        directory = self._run_dir(run_id)
        records = []
        for kind in CHECKPOINT_TYPE:
            for meta in (directory / kind).glob(f"*{_META_SUFFIX}"):
                try:
                    records.append(StoredCheckpoint(**json.loads(meta.read_text())))
                except (OSError, ValueError, TypeError):
                    continue
        return sorted(records, key=lambda c: c.created)

    def list_checkpoints(self, run_id: str) -> list[StoredCheckpoint]:
        """The run's usable checkpoints (expired ones are gone to clients even before deletion)."""
        now = self.clock()
        return [c for c in self._records(run_id) if not c.expired(now)]

    def all_records(self) -> list[StoredCheckpoint]:
        """Every committed checkpoint on disk, expired ones included."""
        return [c for run in self.list_runs() for c in self._records(run.run_id)]

    def list_all_checkpoints(self) -> list[StoredCheckpoint]:
        records = [c for run in self.list_runs() for c in self.list_checkpoints(run.run_id)]
        return sorted(records, key=lambda c: c.created, reverse=True)

    def delete(self, run_id: str, checkpoint_id: str) -> None:
        kind, _, name = checkpoint_id.partition("/")
        with self._lock:
            record, directory = self.resolve(f"tinker://{run_id}/{kind}/{name}")
            (directory.parent / f"{record.name}{_META_SUFFIX}").unlink()
            self.on_delete([record.tinker_path], self.clock())
        shutil.rmtree(directory, ignore_errors=True)

    # -- expiry ------------------------------------------------------------------------------

    def set_ttl(self, run_id: str, checkpoint_id: str, ttl_seconds: object) -> StoredCheckpoint:
        """Expire the checkpoint `ttl_seconds` from now, or never (None); a bad value is refused."""
        ttl = validate_ttl(ttl_seconds)
        kind, _, name = checkpoint_id.partition("/")
        with self._lock:
            record, directory = self.resolve(f"tinker://{run_id}/{kind}/{name}")
            record.expires_at = None if ttl is None else iso(self.clock() + ttl)
            _write_json(directory.parent / f"{record.name}{_META_SUFFIX}", asdict(record))
        return record

    def delete_expired(
        self, in_use: Callable[[], Collection[str]] = frozenset
    ) -> list[StoredCheckpoint]:
        """The deletion pass: remove every expired checkpoint that no lease holds and whose
        tinker path is not in `in_use()`; returns what it deleted. `in_use` is read under the
        lock, so a user that registers before releasing its lease is never missed."""
        deleted, trash = [], []
        with self._lock:
            now = self.clock()
            busy = set(in_use()) | set(self._leases)
            for run in self.list_runs():
                for record in self._records(run.run_id):
                    if record.expired(now) and record.tinker_path not in busy:
                        trash += self._unlink(record)
                        deleted.append(record)
            if deleted:
                self._add_tombstones(deleted, now)
                self.on_delete([record.tinker_path for record in deleted], now)
        for directory in trash:  # renamed away under the lock: a new save of the name is safe
            shutil.rmtree(directory, ignore_errors=True)
        return deleted

    def _unlink(self, record: StoredCheckpoint) -> list[Path]:
        directory = self._run_dir(record.run_id) / record.kind / record.name
        (directory.parent / f"{record.name}{_META_SUFFIX}").unlink(missing_ok=True)
        if not directory.exists():
            return []
        hidden = directory.with_name(f".{record.name}.expired-{uuid.uuid4().hex[:8]}")
        os.rename(directory, hidden)
        return [hidden]

    def remove_leftovers(self) -> list[Path]:
        """Finish what a killed engine left half done in the checkpoint folders; returns the paths.

        Every hidden entry there is a leftover (checkpoint names never start with '.'): a
        checkpoint the deletion pass renamed away (`.<name>.expired-*`), the staging directory of
        a save that never finished, a half-written metadata file. So is a directory without its
        metadata file, the commit marker (a save that never committed, a deletion that never
        finished). Call it only before the engine serves: a running engine's saves stage there.
        """
        removed = []
        for run in (self.root / "runs").iterdir():
            for kind in CHECKPOINT_TYPE:
                folder = run / kind
                if not folder.is_dir():
                    continue
                for entry in folder.iterdir():
                    hidden = entry.name.startswith(".")
                    committed = (folder / f"{entry.name}{_META_SUFFIX}").exists()
                    uncommitted = entry.is_dir() and not committed
                    if hidden or uncommitted:
                        _remove(entry)
                        removed.append(entry)
        return removed

    def _tombstones(self) -> dict[str, dict[str, str]]:
        try:
            stones = json.loads((self.root / _TOMBSTONES).read_text())
        except (OSError, ValueError):
            return {}
        return stones if isinstance(stones, dict) else {}

    def _add_tombstones(self, records: list[StoredCheckpoint], now: float) -> None:
        stones = self._tombstones()
        for record in records:
            stones[record.tinker_path] = {
                "expired_at": str(record.expires_at),
                "deleted_at": iso(now),
            }
        newest = sorted(stones.items(), key=lambda item: str(item[1].get("deleted_at")))[
            -MAX_TOMBSTONES:
        ]
        _write_json(self.root / _TOMBSTONES, dict(newest))

    def _forget_tombstone(self, tinker_path: str) -> None:
        """A new checkpoint under an expired one's path is not "expired" once it is deleted."""
        stones = self._tombstones()
        if stones.pop(tinker_path, None) is not None:
            _write_json(self.root / _TOMBSTONES, stones)


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.replace(tmp, path)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _size(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())
