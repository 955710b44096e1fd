"""Training runs and sweeps mirrored into a tracker, through the loop's `Observer` seam.

`RunTracker` is a `training.Observer`: at `on_start` it opens (or, for a resumed chief run,
continues) the tracker run and logs the plan; each step's and inline eval's metrics follow at
their step; each checkpoint's `tinker://` paths and registry ref become tags; `on_end` logs the
run's cost and ends the tracker run with the chief run's status. The tracker run's link is
written into the chief run's run.json (`trackers`), where `--resume` finds it again and the
registry sink copies it into every version it registers. `fan_out` composes it with the CLI's
own observer. `SweepTracker` groups a sweep's runs (MLflow parent run, W&B group, Trackio group).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from tinker_chief.errors import ChiefError
from tinker_chief.files import read_json
from tinker_chief.paths import ProjectPaths, SweepPaths
from tinker_chief.runfiles import TRACKER_LINKS
from tinker_chief.tracking import content
from tinker_chief.tracking.contract import EndStatus, RunLink, Tracker, stored_links
from tinker_chief.tracking.failsafe import GuardedRun, TrackerGuard, Warn
from tinker_chief.training.loop import Observer, TrainResult
from tinker_chief.training.runlog import CheckpointRecord, RunLog

# A chief run's end as the tracker records it: a run the budget stopped was stopped.
END_STATUS: dict[str, EndStatus] = {
    "finished": "finished",
    "interrupted": "interrupted",
    "stopped": "stopped",
    "budget": "stopped",
}


class FanOut:
    """One `Observer` that calls several, in order (the CLI's display, then the tracker)."""

    def __init__(self, *observers: Observer) -> None:
        self.observers = observers

    def on_start(self, run_id: str, start_step: int, total_steps: int) -> None:
        for o in self.observers:
            o.on_start(run_id, start_step, total_steps)

    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        for o in self.observers:
            o.on_step(step, metrics)

    def on_eval(self, step: int, metrics: dict[str, float]) -> None:
        for o in self.observers:
            o.on_eval(step, metrics)

    def on_checkpoint(self, record: CheckpointRecord) -> None:
        for o in self.observers:
            o.on_checkpoint(record)

    def on_end(self, result: TrainResult) -> None:
        for o in self.observers:
            o.on_end(result)


def fan_out(*observers: Observer | None) -> Observer | None:
    """The observers given (None: left out) as one, or None when there is none."""
    present = [o for o in observers if o is not None]
    return present[0] if len(present) == 1 else (FanOut(*present) if present else None)


def read_links(path: Path) -> dict[str, object]:
    """A JSON file of links chief keeps (a sweep's tracker.json, versions.json); {} when absent
    or not chief's: what it linked is then linked anew."""
    try:
        value = read_json(path) if path.exists() else {}
    except ChiefError:
        return {}
    return dict(value) if isinstance(value, Mapping) else {}


def write_links(path: Path, value: Mapping[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


class RunTracker:
    """A `training.Observer` that mirrors one chief run into `tracker` (None: it failed to open,
    and this observer does nothing)."""

    def __init__(
        self,
        tracker: Tracker | None,
        project_root: Path,
        warn: Warn,
        *,
        label: str | None = None,
        group: RunLink | None = None,
    ) -> None:
        self.tracker, self.root, self.label, self.group = tracker, project_root, label, group
        self.guard = TrackerGuard(tracker.name if tracker else "tracker", warn)
        self.run: GuardedRun | None = None
        self.log: RunLog | None = None

    @property
    def link(self) -> RunLink | None:
        return self.run.link if self.run is not None else None

    def on_start(self, run_id: str, start_step: int, total_steps: int) -> None:
        tracker = self.tracker
        if tracker is None:
            return
        log = self.log = RunLog(ProjectPaths(self.root).run(run_id).dir)
        status = log.status()
        resume = stored_links(status).get(tracker.name)
        params = self.guard.call(
            "reading the run's plan", lambda: content.run_params(log.dir, self.root)
        )
        name = f"{self.label} {run_id}" if self.label else run_id
        self.run = GuardedRun(
            self.guard,
            lambda: tracker.start_run(name, params or {}, group=self.group, resume=resume),
        )
        link = self.run.link
        if link is None:
            return
        if link != resume:  # the chief run's record of where its mirror is (in the loop's thread)
            raw = status.get(TRACKER_LINKS)
            links = dict(raw) if isinstance(raw, Mapping) else {}
            links[tracker.name] = link.to_json()
            log.write_status(str(status.get("status", "running")), **{TRACKER_LINKS: links})
        tags = {"chief.run_id": run_id, "chief.total_steps": str(total_steps)}
        self.run.set_tags(tags)

    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        if self.run is not None:
            self.run.log_metrics(metrics, step)

    def on_eval(self, step: int, metrics: dict[str, float]) -> None:
        if self.run is not None:
            self.run.log_metrics(metrics, step)

    def on_checkpoint(self, record: CheckpointRecord) -> None:
        if self.run is not None:
            registered = f" registry {record.registry_ref}" if record.registry_ref else ""
            self.run.set_tags(
                {
                    f"checkpoint.{record.name}": record.sampler_path + registered,
                    f"checkpoint.{record.name}.state": record.state_path,
                }
            )

    def on_end(self, result: TrainResult) -> None:
        run, log = self.run, self.log
        if run is None or log is None:
            return
        cost = self.guard.call("summing the run's cost", lambda: content.run_cost(log.dir))
        run.log_metrics(cost or {}, result.steps_done)
        final = result.final
        tags: dict[str, str] = {"chief.status": result.status}
        if final is not None:
            tags["chief.candidate"] = final.registry_ref or final.sampler_path
        if result.reason:
            tags["chief.reason"] = result.reason
        run.set_tags(tags)
        run.finish(END_STATUS.get(result.status, "interrupted"))


class SweepTracker:
    """A sweep's group in the tracker, and one `RunTracker` per point inside it. The group's
    link is kept in the sweep directory's tracker.json, so `chief sweep --resume` continues it."""

    def __init__(
        self, tracker: Tracker | None, project_root: Path, sweep: content.SweepState, warn: Warn
    ) -> None:
        self.tracker, self.root, self.sweep, self.warn = tracker, project_root, sweep, warn
        self.guard = TrackerGuard(tracker.name if tracker else "tracker", warn)
        self.group: RunLink | None = None
        if tracker is None:
            return
        path = SweepPaths(sweep.dir).tracker
        links = read_links(path)
        resume = RunLink.from_json(links.get(tracker.name))
        params = content.sweep_params(sweep)
        self.group = self.guard.call(
            "opening the sweep's group",
            lambda: tracker.start_group(sweep.sweep_id, params, resume=resume),
        )
        if self.group is not None and self.group != resume:
            write_links(path, {**links, tracker.name: self.group.to_json()})

    def observer(self, point: content.SweepPointState) -> RunTracker:
        """The point's run, in the sweep's group (a group that did not open: no run either)."""
        return RunTracker(
            self.tracker if self.group is not None else None,
            self.root,
            self.warn,
            label=point.name,
            group=self.group,
        )

    def finish(self, summary_lines: list[str]) -> None:
        """The sweep's points and `summary_lines` (its verdict in words) on the group's own run
        (MLflow's parent run), ended with the sweep's status."""
        tracker, group = self.tracker, self.group
        if tracker is None or group is None:
            return
        own = self.guard.call("opening the sweep's run", lambda: tracker.group_run(group))
        if own is None:  # W&B and Trackio compare a group's runs; they have no run of the group
            return
        run = GuardedRun(self.guard, lambda: own)
        run.log_table("sweep/points", content.SWEEP_COLUMNS, content.sweep_table(self.sweep), 0)
        summary = {f"summary.{i}": line for i, line in enumerate(summary_lines)}
        run.set_tags({"chief.status": self.sweep.status, **summary})
        ends: dict[str, EndStatus] = {"finished": "finished", "failed": "failed"}
        run.finish(ends.get(self.sweep.status, "interrupted"))
