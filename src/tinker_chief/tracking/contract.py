"""The contract every tracker backend fulfils, and the link to a tracker run that chief keeps.

A `Tracker` is one backend opened on a target (`target.TrackingTarget`); it starts runs and
groups. A `TrackerRun` takes what chief logs, in chief's own vocabulary (params, metrics at a
step, tables, tags, an end status), and each backend maps that onto its library: MLflow's
client, Trackio's and W&B's run objects. A `RunLink` is what is remembered of a tracker run
(in run.json, in each registry version's config, in a sweep's `tracker.json`) so `--resume`
and `chief eval` reach the same run again and `registry show`, the report and the model card
can point at it. It imports only a shared leaf: the report and the card read links here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Literal, Protocol

from tinker_chief.runfiles import TRACKER_LINKS

EndStatus = Literal["finished", "interrupted", "stopped", "failed"]
Cell = str | int | float | None  # one value of a logged table


@dataclass(frozen=True)
class RunLink:
    """Where a tracker run lives: enough to continue it and to show a person where to look."""

    backend: str  # mlflow | trackio | wandb
    run_id: str  # the tracker's own id
    name: str  # its display name (Trackio resumes by name)
    url: str | None = None  # a web page of the run, when the tracker has one
    where: str | None = None  # MLflow tracking URI, Trackio directory, W&B run directory
    project: str | None = None  # Trackio/W&B project, MLflow experiment id
    group: str | None = None  # the sweep's id: W&B group, Trackio group, MLflow parent run id

    def to_json(self) -> dict[str, str]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_json(cls, value: object) -> RunLink | None:
        """A stored link, or None when `value` is not one (absent, edited by hand)."""
        if not isinstance(value, Mapping):
            return None
        known = {f.name for f in fields(cls)}
        try:
            return cls(**{str(k): str(v) for k, v in value.items() if k in known})
        except TypeError:  # a required field is missing
            return None

    @property
    def web_url(self) -> str | None:
        """The run's page when it is an http(s) address (never another scheme, to follow)."""
        return self.url if self.url and self.url.startswith(("http://", "https://")) else None

    @property
    def container(self) -> str:
        """What `project` names: an MLflow experiment, a Trackio or W&B project."""
        return "experiment" if self.backend == "mlflow" else "project"

    @property
    def is_group(self) -> bool:
        """A W&B or Trackio sweep group, which is no run of its own (MLflow's is a parent run)."""
        return self.backend != "mlflow" and self.group == self.run_id

    def place(self) -> str:
        """Where to look: the run's web page, else its experiment or project and store."""
        parts = (f"{self.container} {self.project}" if self.project else "", self.where or "")
        return self.web_url or " ".join(part for part in parts if part)

    def describe(self) -> str:
        """One line for `registry show` and the CLI."""
        kind, place = "group" if self.is_group else "run", self.place()
        ids = f" ({self.run_id})" if self.run_id != self.name else ""
        return f"{self.backend} {kind} {self.name}{ids}" + (f": {place}" if place else "")


def stored_links(config: Mapping[str, object]) -> dict[str, RunLink]:
    """The tracker links a registry version's config (or a run.json) holds, by backend."""
    raw = config.get(TRACKER_LINKS)
    if not isinstance(raw, Mapping):
        return {}
    links = {str(backend): RunLink.from_json(value) for backend, value in raw.items()}
    return {backend: link for backend, link in links.items() if link is not None}


class TrackerRun(Protocol):
    """One run in the tracker."""

    @property
    def link(self) -> RunLink: ...

    def log_params(self, params: dict[str, str]) -> None: ...
    def log_metrics(self, metrics: dict[str, float], step: int) -> None: ...
    def log_table(
        self, key: str, columns: Sequence[str], rows: Sequence[Sequence[Cell]], step: int
    ) -> None: ...
    def set_tags(self, tags: dict[str, str]) -> None: ...
    def finish(self, status: EndStatus) -> None: ...


class Tracker(Protocol):
    """A backend opened on one target (an MLflow experiment, a Trackio or W&B project)."""

    name: str

    def start_run(
        self,
        name: str,
        params: dict[str, str],
        *,
        group: RunLink | None = None,
        resume: RunLink | None = None,
    ) -> TrackerRun:
        """A new run (or `resume`'s run continued), in `group` when given. `params` are logged
        once: a resumed run already has them (MLflow refuses to change a param)."""
        ...

    def start_group(
        self, name: str, params: dict[str, str], *, resume: RunLink | None = None
    ) -> RunLink:
        """A sweep's group: MLflow's parent run, W&B's and Trackio's group name."""
        ...

    def attach(self, link: RunLink) -> TrackerRun:
        """An existing run, to add results to (a version's evals, a promotion); its `finish`
        leaves the run's own end status as it was where the tracker keeps one."""
        ...

    def group_run(self, group: RunLink) -> TrackerRun | None:
        """The group's own run, where a sweep's summary goes (MLflow's parent), else None."""
        ...
