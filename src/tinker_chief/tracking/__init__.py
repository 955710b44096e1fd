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
imports none of its modules, so `contract.py` (the link `chief report` and the model card show)
is read without the training loop; import each module by its path:

    from tinker_chief.tracking.mirror import tracking_for
    from tinker_chief.tracking.observer import fan_out
    tracking = tracking_for(project, "mlflow", warn=print)
    train_project(project, observer=fan_out(progress, tracking.run_observer(project.root)))
"""
