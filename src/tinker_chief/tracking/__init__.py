"""Experiment tracking: chief's runs, sweeps, evals and gate verdicts mirrored into the tracker a
team already uses — MLflow, Trackio or Weights & Biases (`--track`, chief.toml `[tracking]`).

Owns which tracker and where (`target.py`: `--track`, chief.toml's `[tracking]` section, whose
schema is `planning.config.TrackingConfig`, the libraries' own environment variables, local
defaults), the backend contract and the link to a tracker run (`contract.py`), one module per
library (`mlflow_tracker.py` through MLflow's client, `trackio_tracker.py` and
`wandb_tracker.py` on the cookbook's `ml_log` loggers), what is logged (`content.py`), the
training `Observer` and a sweep's group (`observer.py`), the guard that keeps a failing tracker
from touching a run (`failsafe.py`) and one command's tracking (`mirror.py`).

The tracker is a mirror, never the record: `.chief/runs` and the registry are complete whether
or not it works. Imports `training` (the observer seam, run directories), `planning` (the
section, the price table), `registry` (a version's results and its link) and the shared leaves;
the trackers' libraries are optional extras, imported only when one is asked for. This package
imports none of its modules up front, so `contract.py` (the link `chief report` and the model
card show) is read without the training loop; the names below are imported on first use:

    from tinker_chief.tracking import fan_out, tracking_for
    tracking = tracking_for(project, "mlflow", warn=print)
    train_project(project, observer=fan_out(progress, tracking.run_observer(project.root)))
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tinker_chief.lazy_exports import lazy_attribute

if TYPE_CHECKING:
    from tinker_chief.tracking.contract import RunLink, stored_links
    from tinker_chief.tracking.failsafe import Warn
    from tinker_chief.tracking.mirror import Tracking, tracking_for
    from tinker_chief.tracking.observer import fan_out
    from tinker_chief.tracking.target import require_installed

_EXPORTS = {
    "RunLink": "tinker_chief.tracking.contract",
    "stored_links": "tinker_chief.tracking.contract",
    "Warn": "tinker_chief.tracking.failsafe",
    "Tracking": "tinker_chief.tracking.mirror",
    "tracking_for": "tinker_chief.tracking.mirror",
    "fan_out": "tinker_chief.tracking.observer",
    "require_installed": "tinker_chief.tracking.target",
}

__all__ = [
    "RunLink",
    "Tracking",
    "Warn",
    "fan_out",
    "require_installed",
    "stored_links",
    "tracking_for",
]


__getattr__ = lazy_attribute(__name__, _EXPORTS)
