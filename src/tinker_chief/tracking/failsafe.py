"""A tracker never kills or corrupts a training run: its first failure is one warning, then it
is switched off for that run, and training, checkpoints and the registry go on as if it had
never been asked for (they are the record; the tracker is a mirror of it).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

from tinker_chief.tracking.contract import Cell, EndStatus, RunLink, TrackerRun

T = TypeVar("T")
Warn = Callable[[str], None]


class TrackerGuard:
    """Runs tracker calls; after the first exception, warns once (through `warn`) and refuses
    every later call, so a dead server costs one timeout, not one per step."""

    def __init__(self, backend: str, warn: Warn) -> None:
        self.backend, self.warn = backend, warn
        self.failed = False
        self._lock = threading.Lock()

    def call(self, what: str, function: Callable[[], T]) -> T | None:
        if self.failed:
            return None
        try:
            return function()
        except Exception as exc:  # any failure of a third-party library, by design
            with self._lock:
                first, self.failed = not self.failed, True
            if first:
                self.warn(
                    f"{self.backend} tracking stopped ({what}: {type(exc).__name__}: "
                    f"{_first_line(exc)}); training goes on and the registry stays complete"
                )
            return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else ""


class GuardedRun:
    """A `TrackerRun` whose calls go through a `TrackerGuard`; `link` is None if the run never
    opened."""

    def __init__(self, guard: TrackerGuard, open_run: Callable[[], TrackerRun]) -> None:
        self.guard = guard
        self.run = guard.call("opening the run", open_run)

    @property
    def link(self) -> RunLink | None:
        return self.run.link if self.run is not None else None

    def _do(self, what: str, call: Callable[[TrackerRun], None]) -> None:
        run = self.run
        if run is not None:
            self.guard.call(what, lambda: call(run))

    def log_params(self, params: dict[str, str]) -> None:
        self._do("logging params", lambda run: run.log_params(params))

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        finite = {
            key: float(value)
            for key, value in metrics.items()
            if isinstance(value, int | float) and math.isfinite(value)
        }
        if finite:
            self._do("logging metrics", lambda run: run.log_metrics(finite, step))

    def log_table(
        self, key: str, columns: Sequence[str], rows: Sequence[Sequence[Cell]], step: int
    ) -> None:
        if rows:
            self._do("logging a table", lambda run: run.log_table(key, columns, rows, step))

    def set_tags(self, tags: dict[str, str]) -> None:
        if tags:
            self._do("setting tags", lambda run: run.set_tags(tags))

    def finish(self, status: EndStatus) -> None:
        self._do("finishing the run", lambda run: run.finish(status))
