"""`TrainSpec`: everything one training run needs, in one validated, hashable object.

The planner decides these values (and records the rule behind each in the plan); `chief
train` turns the project's plan into a `TrainSpec` (`training.project.spec_from_project`)
and the loop only ever reads this object. Its canonical JSON hash is the run's config hash
in the registry's lineage, so two runs with the same hash trained the same recipe.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tinker_chief.files import sha256_file
from tinker_chief.planning.config import Task as Recipe
from tinker_chief.planning.config import TrainOnWhatName as TrainOnWhat

LRSchedule = Literal["linear", "cosine", "constant"]


class RLSettings(BaseModel):
    """RL with verifiable rewards: group sampling and group-centred advantages."""

    model_config = ConfigDict(extra="forbid")

    group_size: int = Field(4, ge=1, description="Samples per prompt; advantages are centred per group.")
    max_tokens: int = Field(32, ge=1, description="Most new tokens per rollout.")
    temperature: float = Field(1.0, gt=0.0)
    kl_penalty_coef: float = Field(0.0, ge=0.0, description="0 disables the KL penalty to the base model.")
    loss_fn: Literal["importance_sampling", "ppo", "cispo"] = "importance_sampling"
    grader: str = Field("normalized_exact", description="Reward: an evals grader spec (1.0 if correct).")


class DistillSettings(BaseModel):
    """Prompt distillation: the teacher sees `teacher_prompt`, the student does not."""

    model_config = ConfigDict(extra="forbid")

    teacher_prompt: str = Field(..., min_length=1)
    teacher_model: str | None = Field(None, description="Defaults to the base model.")
    max_tokens: int = Field(64, ge=1)
    temperature: float = Field(0.0, ge=0.0)


class TrainSpec(BaseModel):
    """One run's recipe, data and hyperparameters (paths relative to the project directory)."""

    model_config = ConfigDict(extra="forbid")

    recipe: Recipe = "sl"
    base_model: str
    renderer: str | None = Field(None, description="Cookbook renderer name; default from the model catalog.")
    train_data: str
    val_data: str | None = None

    lora_rank: int = Field(16, ge=1)
    train_mlp: bool = True
    train_attn: bool = True
    train_unembed: bool = False
    learning_rate: float = Field(5e-4, gt=0.0)
    lr_schedule: LRSchedule = "linear"
    warmup_steps: int = Field(0, ge=0)
    batch_size: int = Field(8, ge=1)
    num_epochs: int = Field(1, ge=1)
    max_steps: int | None = Field(None, ge=1)
    max_length: int | None = Field(512, ge=8)
    truncation: Literal["truncate", "drop"] = "truncate"
    train_on_what: TrainOnWhat = "all_assistant_messages"
    seed: int = 0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.95
    adam_eps: float = 1e-8
    weight_decay: float = 0.0
    grad_clip_norm: float = 0.0

    save_every: int = Field(20, ge=0, description="Checkpoint every N steps (0: only the final one).")
    eval_every: int = Field(10, ge=0, description="Frequent inline eval (validation NLL) every N steps.")
    infrequent_eval_every: int = Field(0, ge=0, description="Sampled accuracy every N steps (0: off).")
    infrequent_eval_limit: int = Field(32, ge=1, description="Held-out examples the sampled eval uses.")
    sampled_eval_data: str | None = Field(None, description="JSONL of {input, output} for the sampled eval "
                                          "(default: the validation data).")
    sampled_eval_grader: str = "normalized_exact"

    rl: RLSettings = Field(default_factory=RLSettings)
    dpo_beta: float = Field(0.1, gt=0.0)
    distill: DistillSettings | None = None

    @model_validator(mode="after")
    def _recipe_fields(self) -> TrainSpec:
        if self.recipe == "distill" and self.distill is None:
            raise ValueError("task `distill` needs [distill] `teacher_prompt` (the prompt the student learns without)")
        return self

    def config_hash(self) -> str:
        """Short hash of every result-affecting field (the registry's `config_hash`)."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    def data_paths(self, project_dir: Path) -> list[Path]:
        return [project_dir / p for p in (self.train_data, self.val_data, self.sampled_eval_data) if p]


def data_hash(paths: list[Path]) -> str:
    """Short hash over the data files' names and contents, in order (a run's `data_hash`)."""
    listing = "".join(f"{path.name}\0{sha256_file(path)}\n" for path in paths)
    return hashlib.sha256(listing.encode()).hexdigest()[:12]
