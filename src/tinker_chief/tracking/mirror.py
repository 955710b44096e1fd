"""`Tracking`: one command's tracker, opened once, handing out what each command needs.

    tracking = tracking_for(project, "mlflow", warn)             # "none": every call does nothing
    observer = tracking.run_observer(project.root)               # chief train
    group = tracking.sweep(project.root, sweep)                  # chief sweep
    tracking.log_evals(registry, "bot:v3", suite_version)        # chief eval, select, demo
    tracking.log_status(registry, "bot:v3", "prod", verdict)     # chief promote, retire, demo

A version's evals and status changes go to the tracker run of the training run that made it
(its link is in the version's registry config); a version no chief run made (a base model, a
foreign checkpoint) gets a run of its own, named after its ref, kept in .chief/tracking.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tinker_chief.paths import SweepPaths
from tinker_chief.planning import Project
from tinker_chief.tracking import content
from tinker_chief.tracking.contract import RunLink, Tracker, stored_links
from tinker_chief.tracking.failsafe import GuardedRun, TrackerGuard, Warn
from tinker_chief.tracking.observer import RunTracker, SweepTracker, read_links, write_links
from tinker_chief.tracking.target import TrackingTarget, resolve_target

if TYPE_CHECKING:
    from tinker_chief.registry import ModelRecord, Registry

# In .chief/tracking: {backend: {ref: link}}, the runs of versions that no chief run made (a base
# model, a foreign checkpoint), so their evals and verdicts keep going to one run.
VERSION_LINKS = "versions.json"


def open_tracker(target: TrackingTarget) -> Tracker:
    """The backend for `target` (imports its library; may touch its store or server)."""
    if target.backend == "mlflow":
        from tinker_chief.tracking.mlflow_tracker import MlflowTracker

        return MlflowTracker(target)
    if target.backend == "trackio":
        from tinker_chief.tracking.trackio_tracker import TrackioTracker

        return TrackioTracker(target)
    from tinker_chief.tracking.wandb_tracker import WandbTracker

    return WandbTracker(target)


@dataclass
class Tracking:
    target: TrackingTarget | None
    tracker: Tracker | None
    warn: Warn

    @classmethod
    def start(cls, target: TrackingTarget | None, warn: Warn) -> Tracking:
        """Open `target`'s tracker; one that cannot be reached is one warning, not an error."""
        if target is None:
            return cls(None, None, warn)
        opened = TrackerGuard(target.backend, warn).call("connecting", lambda: open_tracker(target))
        return cls(target, opened, warn)

    @property
    def on(self) -> bool:
        return self.tracker is not None

    def run_observer(self, project_root: Path) -> RunTracker | None:
        return RunTracker(self.tracker, project_root, self.warn) if self.tracker else None

    def sweep(self, project_root: Path, sweep: content.SweepState) -> SweepTracker | None:
        return SweepTracker(self.tracker, project_root, sweep, self.warn) if self.tracker else None

    def _version_run(self, registry: Registry, ref: str) -> tuple[GuardedRun, ModelRecord] | None:
        """The tracker run of version `ref` (attached): its training run's, else the run this
        project's tracking opened for it before (a version no chief run made), else a new one."""
        tracker, target = self.tracker, self.target
        if tracker is None or target is None:
            return None
        record = registry.get_model(ref)
        path = target.local_dir / VERSION_LINKS
        own = read_links(path)
        mine = own.get(tracker.name)
        made_here = RunLink.from_json(mine.get(record.ref)) if isinstance(mine, dict) else None
        link = stored_links(record.config).get(tracker.name) or made_here
        guard = TrackerGuard(tracker.name, self.warn)
        if link is not None:
            return GuardedRun(guard, lambda: tracker.attach(link)), record
        params = content.flatten(
            {
                "model": record.ref,
                "base_model": record.base_model,
                "tinker_path": record.tinker_path,
                **content.versions(),
            }
        )
        run = GuardedRun(guard, lambda: tracker.start_run(record.ref, params))
        if run.link is not None:
            earlier = mine if isinstance(mine, dict) else {}
            write_links(path, {**own, tracker.name: {**earlier, record.ref: run.link.to_json()}})
        return run, record

    def log_evals(
        self, registry: Registry, ref: str, suite_version: str | None = None
    ) -> RunLink | None:
        """The version's latest finished results (of `suite_version`, when given) as metrics at
        its training step, a table `eval/<suite>` and the suite's version tags; returns the
        run's link."""
        opened = self._version_run(registry, ref)
        if opened is None:
            return None
        run, record = opened
        latest = registry.latest_results(record.ref, suite_version)
        results = [r for r in latest.values() if r.metrics]
        step = record.training_step or 0
        run.log_metrics(content.eval_metrics(results), step)
        if results:
            table = content.eval_table(results)
            run.log_table(f"eval/{results[0].suite_name}", content.EVAL_COLUMNS, table, step)
        run.set_tags(content.eval_tags(results))
        run.finish("finished")
        return run.link

    def log_status(
        self, registry: Registry, ref: str, status: str, verdict: str, reasons: Sequence[str] = ()
    ) -> RunLink | None:
        """A gate verdict (`verdict`: passed, refused, forced, retired) and the status it led
        to, on the version's run."""
        opened = self._version_run(registry, ref)
        if opened is None:
            return None
        run, record = opened
        run.set_tags({"chief.status": status, "chief.gate": verdict})
        rows = [[status, verdict, reason] for reason in reasons] or [[status, verdict, ""]]
        run.log_table(
            "gate/verdict", ("status", "verdict", "reason"), rows, record.training_step or 0
        )
        run.finish("finished")
        return run.link

    def log_selection(
        self, registry: Registry, ref: str, scope: str, reason: str
    ) -> RunLink | None:
        """`chief select`'s choice (`scope`: `sweep:<id>`, `run:<id>`) on the chosen run."""
        opened = self._version_run(registry, ref)
        if opened is None:
            return None
        run, _record = opened
        run.set_tags({"chief.selected": scope, "chief.selected.reason": reason})
        run.finish("finished")
        return run.link

    def group_of(self, sweep_dir: Path) -> RunLink | None:
        """The sweep's group in this tracker (its tracker.json), once `sweep` opened it."""
        if self.tracker is None:
            return None
        return RunLink.from_json(read_links(SweepPaths(sweep_dir).tracker).get(self.tracker.name))


def tracking_for(project: Project, flag: str | None, warn: Warn) -> Tracking:
    """A project's tracking for one command: `--track` (`flag`) over its `[tracking]` section.
    A tracker that is not installed is a `ConfigurationError` here, before anything runs."""
    target = resolve_target(
        project.config.tracking, flag, project_name=project.config.name, project_root=project.root
    )
    return Tracking.start(target, warn)
