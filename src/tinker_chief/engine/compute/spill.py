"""Evicted snapshot adapters kept on disk until a client samples from them again.

A snapshot (`save_weights_and_get_sampling_client`) exists only in the engine's memory, so when
the sampler LRU evicts one, `SpillStore.put` writes its weights to disk, and `read` + `forget`
bring them back (and delete the file) when the snapshot is used again. The files go to
`<root>/<pid>/` when the engine gives a root (its `--state-dir/evicted-samplers`; directories
left there by engines that were killed are removed on first use, since snapshots never
survive a restart), else to a private temporary directory.
Files are named by a counter of this store, never by slot name: slot names are unique per base
model only, and one engine serves several. The store holds at most `max_bytes`; past that the
oldest spills are dropped, and `was_dropped` lets the caller say so instead of "unknown"; a
spill that cannot be written (disk full) or whose file has vanished counts as dropped too, so
a storage problem costs that one snapshot, never the sampling of others. The directory is
removed when the store is garbage-collected or the process exits normally.
"""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import tempfile
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch
from peft import LoraConfig
from safetensors.torch import load_file, save_file

MAX_SPILL_BYTES = 4 * 1024**3  # ~200 snapshots of SmolLM2-135M at rank 16

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SpilledAdapter:
    base_name: str
    config: LoraConfig
    path: Path
    size: int


class SpillStore:
    def __init__(self, max_bytes: int | None = None, root: Path | None = None) -> None:
        self.max_bytes = MAX_SPILL_BYTES if max_bytes is None else max_bytes
        self.root = root
        self._entries: OrderedDict[str, SpilledAdapter] = OrderedDict()
        self._dropped: set[str] = set()
        self._names = itertools.count()
        self._dir: Path | None = None

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def was_dropped(self, key: str) -> bool:
        return key in self._dropped

    def put(
        self, key: str, base_name: str, config: LoraConfig, weights: dict[str, torch.Tensor]
    ) -> None:
        path = self._directory() / f"{next(self._names)}.safetensors"
        try:
            save_file(weights, str(path))
        except OSError as exc:
            path.unlink(missing_ok=True)
            self._dropped.add(key)
            log.warning("could not spill evicted sampler %s (%s); it is released", key, exc)
            return
        self._entries[key] = SpilledAdapter(base_name, config, path, path.stat().st_size)
        self._drop_oldest_over_budget()

    def read(self, key: str) -> tuple[str, LoraConfig, dict[str, torch.Tensor]] | None:
        """The spilled adapter's base, config and weights (still kept: `forget` once they are
        loaded); None, and the key dropped, if its file cannot be read any more."""
        entry = self._entries[key]
        try:
            return entry.base_name, entry.config, load_file(str(entry.path))
        except OSError as exc:
            log.warning("spilled sampler %s cannot be read back (%s); it is released", key, exc)
            self._drop(key)
            return None

    def forget(self, key: str) -> None:
        entry = self._entries.pop(key)
        entry.path.unlink(missing_ok=True)

    def _drop(self, key: str) -> None:
        self.forget(key)
        self._dropped.add(key)

    def _drop_oldest_over_budget(self) -> None:
        while (
            len(self._entries) > 1 and sum(e.size for e in self._entries.values()) > self.max_bytes
        ):
            self._drop(next(iter(self._entries)))

    def _directory(self) -> Path:
        if self._dir is None:
            if self.root is None:
                self._dir = Path(tempfile.mkdtemp(prefix=f"chief-evicted-samplers-{os.getpid()}-"))
            else:
                _remove_dead_engines_spills(self.root)
                self._dir = self.root / str(os.getpid())
                self._dir.mkdir(parents=True, exist_ok=True)
            weakref.finalize(self, shutil.rmtree, self._dir, ignore_errors=True)
        return self._dir


def _remove_dead_engines_spills(root: Path) -> None:
    """Spill directories are named by their engine's pid; those of processes gone are leftovers."""
    for directory in root.glob("*"):
        if directory.is_dir() and directory.name.isdigit() and not _alive(int(directory.name)):
            shutil.rmtree(directory, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True
