"""W&B offline runs read back: wandb 0.31 ships no Python reader of its run files (the
`.wandb` transaction log, read by its Go core for `wandb sync`), so this reads the log's framing
(LevelDB-style 32 KiB blocks of chunks after a `:W&B` header; checksums are not verified) and
decodes each record with wandb's own protobuf schema (`wandb.proto.wandb_internal_pb2.Record`)."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

BLOCK, HEADER = 32768, 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def _chunks(data: bytes) -> Iterator[bytes]:
    ident, magic, _version = struct.unpack("<4sHB", data[:HEADER])
    assert (ident, magic) == (b":W&B", 0xBEE1), "not a W&B run file"
    offset, pending = HEADER, b""
    while offset + HEADER <= len(data):
        left = BLOCK - offset % BLOCK
        if left < HEADER:  # a block's tail too short for a header is padding
            offset += left
            continue
        _checksum, length, kind = struct.unpack("<IHB", data[offset : offset + HEADER])
        if kind == 0 and length == 0:
            break
        chunk = data[offset + HEADER : offset + HEADER + length]
        offset += HEADER + length
        if kind == FULL:
            yield chunk
        elif kind == FIRST:
            pending = chunk
        elif kind == MIDDLE:
            pending += chunk
        elif kind == LAST:
            yield pending + chunk
            pending = b""


@dataclass
class OfflineRun:
    directory: Path
    run_id: str = ""
    name: str = ""
    group: str = ""
    project: str = ""
    config: dict[str, object] = field(default_factory=dict)
    history: list[dict[str, object]] = field(default_factory=list)
    summary: dict[str, object] = field(default_factory=dict)
    exit_code: int | None = None


class _Item(Protocol):
    """A config, history or summary item of a W&B record."""

    key: str
    nested_key: list[str]


def _key(item: _Item) -> str:
    return item.key or "/".join(item.nested_key)


def read_offline_run(directory: Path) -> OfflineRun:
    from wandb.proto import wandb_internal_pb2 as pb

    (path,) = directory.glob("run-*.wandb")
    run = OfflineRun(directory)
    for raw in _chunks(path.read_bytes()):
        record = pb.Record()
        record.ParseFromString(raw)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            r = record.run
            run.run_id, run.name, run.group, run.project = (
                r.run_id,
                r.display_name,
                r.run_group,
                r.project,
            )
            for item in r.config.update:
                run.config[_key(item)] = json.loads(item.value_json)
        elif kind == "config":
            for item in record.config.update:
                run.config[_key(item)] = json.loads(item.value_json)
        elif kind == "history":
            run.history.append({_key(i): json.loads(i.value_json) for i in record.history.item})
        elif kind == "summary":
            for item in record.summary.update:
                run.summary[_key(item)] = json.loads(item.value_json)
        elif kind == "exit":
            run.exit_code = record.exit.exit_code
    return run


def offline_runs(wandb_dir: Path) -> list[OfflineRun]:
    """Every offline run directory under `wandb_dir` (a resumed run has one per process)."""
    return [read_offline_run(d) for d in sorted(wandb_dir.glob("offline-run-*"))]
