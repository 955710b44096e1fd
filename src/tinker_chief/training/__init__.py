"""Training orchestration: `chief train`.

Runs a project's plan through the `tinker` SDK on the local engine or Tinker's cloud:
supervised chat SFT, prompt distillation, RL with verifiable rewards and DPO; inline
evaluators; periodic checkpoints registered with lineage; exact resume after a crash.
Imports `planning` (the project and plan), `evals` (inline evaluators) and `registry`.

Public API:
    train(project_dir, spec, *, backend=None, base_url=None, resume=False, sink_factory=None,
          observer=None) -> TrainResult                                    (training.session)
    train_project(project, *, backend=None, base_url=None, resume=False, observer=None)
          -> TrainResult   (spec from chief.toml, checkpoints registered)  (training.session)
    TrainSpec, spec_from_project(project) -> TrainSpec                    (training.spec/.project)
    open_backend(project_dir, backend, base_url, base_model) -> ctx[Backend] (training.connect)
    RunLog (run dirs, metrics.jsonl, checkpoints.jsonl), CheckpointRecord   (training.runlog)
    write_secret_code_skill(directory, n_train, n_heldout, seed)           (training.synthetic)
"""

from tinker_chief.training.connect import Backend, open_backend
from tinker_chief.training.loop import Observer, TrainResult
from tinker_chief.training.project import RegistrySink, spec_from_project
from tinker_chief.training.runlog import CheckpointRecord, RunLog
from tinker_chief.training.session import train, train_project
from tinker_chief.training.spec import TrainSpec
from tinker_chief.training.synthetic import secret_code, write_secret_code_skill

__all__ = [
    "Backend",
    "CheckpointRecord",
    "Observer",
    "RegistrySink",
    "RunLog",
    "TrainResult",
    "TrainSpec",
    "open_backend",
    "secret_code",
    "spec_from_project",
    "train",
    "train_project",
    "write_secret_code_skill",
]
