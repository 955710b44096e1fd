"""Workflows: what a command does across capabilities, above them all.

`training` is the loop, `evals` the eval engine, `planning` the doctrine; a workflow composes
them for one project (a `workspace.Workspace`) on one connection, and the CLI parses, calls it
and prints. Each runs on a connection it is given, or opens the project's own (flags,
environment, `[backend]`). Nothing below imports a workflow. Each module is imported by its own
path (this package imports none of them, so `chief --help` stays fast):

- `evaluation`: `chief eval`, the project's suite on one model, on its backend, recorded;
- `sweeping`: `chief sweep`, a grid of training runs around the plan, concurrently on one
  connection, and where the best learning rate fell (`chief plan` shows it);
- `selection`: `chief select`, a sweep's or a run's candidate: cheap evidence first, the suite
  on the shortlist, a paired test, the choice marked in the registry;
- `calibrate`: `chief plan --calibrate`, the local engine's training speed measured here;
- `reward_probe`: `chief plan --probe-rewards`, a dry sample of the base model's RL rewards, and
  the held-out reward `chief select` ranks RL checkpoints by;
- `demo`: `chief demo`, the whole job end to end on a small model (only `cli/demo.py` imports it).
"""

# The public modules, each imported by its own path (none is imported here).
__all__ = ["calibrate", "demo", "evaluation", "reward_probe", "selection", "sweeping"]
