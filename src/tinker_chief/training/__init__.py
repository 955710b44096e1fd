"""Training: `chief train`, the loop every run goes through.

Runs a project's plan through the `tinker` SDK on the local engine or Tinker's cloud:
supervised chat SFT, prompt distillation, RL with verifiable rewards and DPO; inline
evaluators; periodic checkpoints registered with lineage; exact resume after a crash.
Imports `planning` (the project and plan), `evals` (inline evaluators), `registry`,
`connection` (where the backend is: the one precedence every command shares) and `workspace`
(`train_project` applies the project's `[backend]` and registry as every command does).

Public API:
    train(project_dir, spec, *, backend=None, base_url=None, connection=None, resume=False,
          sink_factory=None, observer=None, stop=None) -> TrainResult      (training.session)
          (resume: True for the latest unfinished run, or a run id; stop: a shared StopRequest)
    train_project(project, *, backend=None, base_url=None, connection=None, resume=False,
          observer=None) -> TrainResult (spec from chief.toml, checkpoints registered;
          project: a Workspace, or a loaded Project opened as one)
    TrainSpec, spec_from_project(project) -> TrainSpec                    (training.spec/.project)
    RunLog (a run dir written; read by tinker_chief.runfiles), CheckpointRecord (training.runlog)
    write_secret_code_skill(directory, n_train, n_heldout, seed)           (training.synthetic)
`chief sweep`, `chief select`, `chief plan --calibrate` and `--probe-rewards` are workflows above
training (`tinker_chief.workflows`).
"""

from tinker_chief.training.from_project import RegistrySink, spec_from_project
from tinker_chief.training.loop import Observer, TrainResult
from tinker_chief.training.runlog import CheckpointRecord, RunLog
from tinker_chief.training.session import train, train_project
from tinker_chief.training.spec import TrainSpec
from tinker_chief.training.synthetic import secret_code, write_secret_code_skill

__all__ = [
    "CheckpointRecord",
    "Observer",
    "RegistrySink",
    "RunLog",
    "TrainResult",
    "TrainSpec",
    "secret_code",
    "spec_from_project",
    "train",
    "train_project",
    "write_secret_code_skill",
]
