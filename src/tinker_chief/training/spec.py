"""`TrainSpec`: everything one training run needs, in one validated, hashable object.

The training settings are the sections of `chief.toml` themselves (`[data]`, `[lora]`,
`[optimizer]`, `[schedule]`, `[checkpoints]`, `[inline_evals]`, `[rl]`, `[dpo]`, `[distill]`,
from `planning.config`), not copies under other names: `TrainSpec.from_config` takes them as
the planner wrote them, and a library caller who builds a spec by hand gets the doctrine's
defaults (rank 32, unembedding adapted, grad clip 1.0, max length 2048, ...) because they are
the same classes. The loop only ever reads this object. Its canonical JSON hash is the run's
config hash in the registry's lineage, so two runs with the same hash trained the same recipe.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tinker_chief.errors import TrainingError
from tinker_chief.files import sha256_file
from tinker_chief.models import RendererChoice
from tinker_chief.planning.config import (
    CheckpointConfig,
    DataConfig,
    DistillConfig,
    DPOConfig,
    InlineEvalConfig,
    LoraConfig,
    OptimizerConfig,
    Recipe,
    RLConfig,
    ScheduleConfig,
)

if TYPE_CHECKING:
    from tinker_chief.planning.config import ProjectConfig

# The chief.toml sections a run is made of, in the order they appear there.
SECTIONS = (
    "data",
    "lora",
    "optimizer",
    "schedule",
    "checkpoints",
    "inline_evals",
    "rl",
    "dpo",
    "distill",
)


class TrainSpec(BaseModel):
    """One run's recipe, data and hyperparameters (paths relative to the project directory)."""

    model_config = ConfigDict(extra="forbid")

    recipe: Recipe = "sl"
    base_model: str
    renderer: str | None = Field(
        None, description="Cookbook renderer name; default from the model catalog."
    )
    seed: int = 0
    data: DataConfig
    lora: LoraConfig = Field(default_factory=LoraConfig)
    optimizer: OptimizerConfig
    schedule: ScheduleConfig
    checkpoints: CheckpointConfig = Field(default_factory=CheckpointConfig)
    inline_evals: InlineEvalConfig = Field(default_factory=InlineEvalConfig)
    rl: RLConfig = Field(default_factory=RLConfig)
    dpo: DPOConfig = Field(default_factory=DPOConfig)
    distill: DistillConfig = Field(default_factory=DistillConfig)
    # The sampled inline eval's data and grader: those of the suite task that
    # `[inline_evals] sampled_task` names (resolved by `spec_from_project`), else the validation
    # data graded by normalized exact match.
    sampled_eval_data: str | None = None
    sampled_eval_grader: str = "normalized_exact"
    sampled_eval_limit: int = Field(
        32, ge=1, description="Held-out examples the sampled eval uses."
    )

    @model_validator(mode="after")
    def _recipe_fields(self) -> TrainSpec:
        if self.recipe == "distill" and not self.distill.teacher_prompt:
            raise ValueError(
                "recipe `distill` needs [distill] `teacher_prompt` "
                "(the prompt the student learns without)"
            )
        return self

    @classmethod
    def from_config(
        cls, config: ProjectConfig, *, sampled_eval_data: str | None = None
    ) -> TrainSpec:
        """The run `config` (a whole chief.toml) describes; `sampled_eval_data`: the data of the
        suite task the sampled inline eval uses (resolved by `spec_from_project`)."""
        sections = {name: getattr(config, name) for name in SECTIONS}
        return cls(
            recipe=config.recipe,
            base_model=config.base_model,
            renderer=config.renderer,
            seed=config.seed,
            **sections,
            sampled_eval_data=sampled_eval_data,
        )

    @property
    def renderer_choice(self) -> RendererChoice | None:
        """The spec's renderer for its base model (None: the model's own), for every sampler of
        the run: training, inline evals and an `llm_judge` reward on the base model."""
        return RendererChoice(self.renderer, self.base_model) if self.renderer else None

    @property
    def batch_size(self) -> int:
        """Examples per optimizer step: prompts (groups) for RL, examples otherwise."""
        return self.rl.groups_per_batch if self.recipe == "rl" else self.schedule.batch_size

    def with_hyperparameters(
        self, *, learning_rate: float, rank: int, batch_size: int
    ) -> TrainSpec:
        """This spec at another grid point (a sweep's): LR, LoRA rank and batch size replaced."""
        batch = (
            {"rl": {**self.rl.model_dump(), "groups_per_batch": batch_size}}
            if self.recipe == "rl"
            else {"schedule": {**self.schedule.model_dump(), "batch_size": batch_size}}
        )
        return TrainSpec.model_validate(
            {
                **self.model_dump(),
                **batch,
                "optimizer": {**self.optimizer.model_dump(), "learning_rate": learning_rate},
                "lora": {**self.lora.model_dump(), "rank": rank},
            }
        )

    def config_hash(self) -> str:
        """Short hash of every result-affecting field (the registry's `config_hash`). How long
        checkpoints are kept is not one: changing it never blocks `--resume`."""
        fields = self.model_dump(mode="json", exclude={"checkpoints": {"ttl_days"}})
        canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    def data_paths(self, project_dir: Path) -> list[Path]:
        return [
            project_dir / p for p in (self.data.train, self.data.val, self.sampled_eval_data) if p
        ]


def stored_spec(raw: object, run_dir: Path) -> TrainSpec:
    """A run's recorded spec (spec.json) as a `TrainSpec`; one this chief cannot read (written by
    an older version, or edited) is a `TrainingError` naming the file, never a traceback."""
    try:
        return TrainSpec.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise TrainingError(
            f"{run_dir / 'spec.json'}: field {where!r}: {first['msg']} (a run started by an "
            "older chief cannot be resumed or selected from; start a new run)"
        ) from None


def data_hash(paths: list[Path]) -> str:
    """Short hash over the data files' names and contents, in order (a run's `data_hash`)."""
    listing = "".join(f"{path.name}\0{sha256_file(path)}\n" for path in paths)
    return hashlib.sha256(listing.encode()).hexdigest()[:12]
