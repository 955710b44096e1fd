"""Training runs and checkpoints on disk under `--state-dir`; survives engine restarts.

Layout::

    <state_dir>/runs/<run_id>/run.json                      run metadata (base model, LoRA)
    <state_dir>/runs/<run_id>/weights/<name>/               save_state: PEFT adapter + optimizer
    <state_dir>/runs/<run_id>/weights/<name>.json           its metadata (written last)
    <state_dir>/runs/<run_id>/sampler_weights/<name>/       save_weights_for_sampler: PEFT adapter

A checkpoint directory is filled in a hidden staging directory and renamed into place; its
metadata JSON is written last and is the commit marker, so a crash never lists a half-written
checkpoint. Names are validated (no path traversal); an existing name is kept unless the
request says overwrite.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from tinker_chief.engine.backend import LoraSpec
from tinker_chief.engine.server.errors import ConflictError, InvalidRequestError, NotFoundError

CheckpointKind = Literal["weights", "sampler_weights"]
CHECKPOINT_TYPE: dict[str, str] = {"weights": "training", "sampler_weights": "sampler"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9:._-]{0,127}$")
_META_SUFFIX = ".json"


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()


@dataclass
class RunRecord:
    run_id: str
    base_model: str
    lora: dict  # LoraSpec fields
    created: str = field(default_factory=now_iso)
    last_request_time: str = field(default_factory=now_iso)
    user_metadata: dict[str, str] | None = None

    def lora_spec(self) -> LoraSpec:
        return LoraSpec(**self.lora)


@dataclass
class CheckpointRecord:
    run_id: str
    kind: CheckpointKind
    name: str
    created: str
    size_bytes: int
    user_metadata: dict[str, str] | None = None

    @property
    def checkpoint_id(self) -> str:
        return f"{self.kind}/{self.name}"

    @property
    def tinker_path(self) -> str:
        return f"tinker://{self.run_id}/{self.kind}/{self.name}"


def validate_name(name: str | None, what: str = "checkpoint name") -> str:
    if not isinstance(name, str) or not _NAME.match(name) or ".." in name:
        raise InvalidRequestError(
            f"invalid {what} {name!r}: expected 1-128 characters of letters, digits, '.', '_' or '-', "
            "starting with a letter or digit (no '/' or '..')")
    return name


def validate_run_id(run_id: str) -> str:
    if not isinstance(run_id, str) or not _RUN_ID.match(run_id) or ".." in run_id:
        raise InvalidRequestError(f"invalid training run id {run_id!r}")
    return run_id


def parse_tinker_path(path: str) -> tuple[str, CheckpointKind, str]:
    """`tinker://<run>/<weights|sampler_weights>/<name>` -> (run, kind, name), validated."""
    if not isinstance(path, str) or not path.startswith("tinker://"):
        raise InvalidRequestError(f"invalid checkpoint path {path!r}: expected tinker://<run>/weights/<name> "
                                  "or tinker://<run>/sampler_weights/<name>")
    parts = path[len("tinker://"):].split("/")
    if len(parts) != 3 or parts[1] not in CHECKPOINT_TYPE:
        if len(parts) == 3 and parts[1] == "external_weights":
            raise InvalidRequestError("external_weights checkpoints are not supported by the local engine")
        raise InvalidRequestError(f"invalid checkpoint path {path!r}: expected tinker://<run>/weights/<name> "
                                  "or tinker://<run>/sampler_weights/<name>")
    return validate_run_id(parts[0]), parts[1], validate_name(parts[2])  # type: ignore[return-value]


class CheckpointStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        (self.root / "runs").mkdir(parents=True, exist_ok=True)

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

    def save_checkpoint(self, run_id: str, kind: CheckpointKind, name: str, overwrite: bool,
                        write: Callable[[Path], None],
                        user_metadata: dict[str, str] | None = None) -> CheckpointRecord:
        """Create a checkpoint: `write` fills an empty directory, which then becomes visible."""
        name = validate_name(name)
        parent = self._run_dir(run_id) / kind
        parent.mkdir(parents=True, exist_ok=True)
        target, meta = parent / name, parent / f"{name}{_META_SUFFIX}"
        if meta.exists() and not overwrite:
            raise ConflictError(f"checkpoint tinker://{run_id}/{kind}/{name} already exists; "
                                "pass overwrite=True to replace it or choose another name")
        staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=parent))
        try:
            write(staging)
            meta.unlink(missing_ok=True)
            if target.exists():
                shutil.rmtree(target)
            os.rename(staging, target)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        record = CheckpointRecord(run_id, kind, name, now_iso(), _size(target), user_metadata)
        _write_json(meta, asdict(record))
        return record

    def resolve(self, tinker_path: str) -> tuple[CheckpointRecord, Path]:
        run_id, kind, name = parse_tinker_path(tinker_path)
        meta = self._run_dir(run_id) / kind / f"{name}{_META_SUFFIX}"
        if not meta.is_file():
            raise NotFoundError(self._unknown_message(tinker_path, run_id))
        return CheckpointRecord(**json.loads(meta.read_text())), meta.parent / name

    def _unknown_message(self, tinker_path: str, run_id: str) -> str:
        if not (self._run_dir(run_id) / "run.json").is_file():
            return f"unknown checkpoint {tinker_path}: there is no training run {run_id!r} on this engine"
        known = [c.tinker_path for c in self.list_checkpoints(run_id)]
        listing = ", ".join(known) if known else "none"
        return f"unknown checkpoint {tinker_path}: checkpoints of run {run_id!r} are: {listing}"

    def list_checkpoints(self, run_id: str) -> list[CheckpointRecord]:
        directory = self._run_dir(run_id)
        records = []
        for kind in CHECKPOINT_TYPE:
            for meta in (directory / kind).glob(f"*{_META_SUFFIX}"):
                try:
                    records.append(CheckpointRecord(**json.loads(meta.read_text())))
                except (OSError, ValueError, TypeError):
                    continue
        return sorted(records, key=lambda c: c.created)

    def list_all_checkpoints(self) -> list[CheckpointRecord]:
        records = [c for run in self.list_runs() for c in self.list_checkpoints(run.run_id)]
        return sorted(records, key=lambda c: c.created, reverse=True)

    def delete(self, run_id: str, checkpoint_id: str) -> None:
        kind, _, name = checkpoint_id.partition("/")
        record, directory = self.resolve(f"tinker://{run_id}/{kind}/{name}")
        (directory.parent / f"{record.name}{_META_SUFFIX}").unlink()
        shutil.rmtree(directory, ignore_errors=True)


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.replace(tmp, path)


def _size(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())
