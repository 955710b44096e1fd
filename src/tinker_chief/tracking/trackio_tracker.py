"""Trackio, locally: one Trackio project per chief project, one Trackio run per chief run, a
sweep's runs in one group. Metrics go through the cookbook's `ml_log.TrackioLogger` (`trackio.log`
and `trackio.finish` on the run `trackio.init` made current in this thread: each training run,
and each sweep point, runs in one thread). Only opening differs: the cookbook's logger cannot
pass a group or resume a run, so `trackio.init` is called here.

Trackio keeps its store in `$TRACKIO_DIR` (default: the Hugging Face cache's `trackio/`), needs
no account, and its dashboard (`trackio show --project NAME`) runs on this machine. It has no
tags: chief's tags (checkpoint paths, registry refs, the status) are logged as a table
`chief/tags`. A run resumed by Trackio loses the config it was not given again, so a resumed or
attached run is given its stored config back.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, TypeVar

from tinker_cookbook.utils.ml_log import TrackioLogger

from tinker_chief.tracking.contract import Cell, EndStatus, RunLink
from tinker_chief.tracking.target import TrackingTarget

if TYPE_CHECKING:
    from trackio.run import Run

T = TypeVar("T")
_STDOUT = threading.Lock()


@contextlib.contextmanager
def _prints_to_stderr() -> Iterator[None]:
    """Trackio prints its banners on stdout; `--json` output owns stdout."""
    with _STDOUT, contextlib.redirect_stdout(sys.stderr):
        yield


def _quiet(call: Callable[[], T]) -> T:
    with _prints_to_stderr():
        return call()


class TrackioTracker:
    name = "trackio"

    def __init__(self, target: TrackingTarget) -> None:
        import trackio.utils

        self.project = target.project
        self.where = str(trackio.utils.TRACKIO_DIR)

    def _init(
        self, name: str, config: Mapping[str, object], group: str | None, resume: bool
    ) -> TrackioRun:
        import trackio

        run = _quiet(
            lambda: trackio.init(
                project=self.project,
                name=name,
                group=group,
                config=dict(config),
                resume="must" if resume else "never",
                embed=False,
                auto_log_cpu=False,
                auto_log_gpu=False,
            )
        )
        link = RunLink(
            "trackio", run.id, run.name, where=self.where, project=self.project, group=group
        )
        return TrackioRun(run, link)

    def start_run(
        self,
        name: str,
        params: dict[str, str],
        *,
        group: RunLink | None = None,
        resume: RunLink | None = None,
    ) -> TrackioRun:
        if resume is not None:
            return self._init(resume.name, params, resume.group, resume=True)
        return self._init(name, params, group.name if group else None, resume=False)

    def start_group(
        self, name: str, params: dict[str, str], *, resume: RunLink | None = None
    ) -> RunLink:
        return RunLink("trackio", name, name, where=self.where, project=self.project, group=name)

    def attach(self, link: RunLink) -> TrackioRun:
        from trackio.sqlite_storage import SQLiteStorage

        stored = SQLiteStorage.get_run_config(self.project, link.name) or {}
        config = {k: v for k, v in stored.items() if not k.startswith("_")}
        return self._init(link.name, config, link.group, resume=True)

    def group_run(self, group: RunLink) -> None:
        return None


class TrackioRun(TrackioLogger):
    def __init__(self, run: Run, link: RunLink) -> None:
        # Not the cookbook's __init__: the run is opened by `TrackioTracker._init` (group, resume).
        self.run, self.link = run, link
        self.step = 0
        self.tags: dict[str, str] = {}

    def log_params(self, params: dict[str, str]) -> None:
        """Trackio takes a run's config when it opens (`start_run`), not later."""

    def log_metrics(self, metrics: Mapping[str, object], step: int | None = None) -> None:
        self.step = max(self.step, step or 0)
        super().log_metrics(dict(metrics), step)

    def log_table(
        self, key: str, columns: Sequence[str], rows: Sequence[Sequence[Cell]], step: int
    ) -> None:
        import trackio

        table = trackio.Table(columns=list(columns), data=[list(row) for row in rows])
        self.log_metrics({key: table}, step)

    def set_tags(self, tags: dict[str, str]) -> None:
        self.tags.update(tags)
        rows = [[tag, value] for tag, value in sorted(self.tags.items())]
        self.log_table("chief/tags", ("tag", "value"), rows, self.step)

    def finish(self, status: EndStatus) -> None:
        _quiet(self.close)
