"""`chief.toml`: the project file's schema, loading and validation.

`ProjectConfig` is the single source of truth a project's training, evals and registry read;
`chief init` writes it (`planning.toml_writer.save_project`, with a comment on every section)
and `load_project` reads it back, turning pydantic's errors into messages that name the file, the
dotted field and what was expected. Every field is concrete (init fills the planner's
recommendations in), so training never has to re-plan to know its settings.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails

from tinker_chief.errors import ChiefDeprecation, ConfigurationError
from tinker_chief.evals.suite import EvalSuite, checked_grader
from tinker_chief.files import read_toml
from tinker_chief.models.renderers import RendererChoice
from tinker_chief.paths import REGISTRY, registry_file
from tinker_chief.registry.names import model_name_problem
from tinker_chief.registry.rules import GateRules, SuiteRequirement

CONFIG_FILENAME = "chief.toml"
SCHEMA_VERSION = 2  # 2: `task` renamed `recipe` (schema 1 files are read, see `_migrate`)

Recipe = Literal["sl", "rl", "dpo", "distill"]
UseCase = Literal["chat", "code", "math", "agent"]
# The cookbook's `TrainOnWhat` values (tinker_cookbook.renderers.TrainOnWhat, 0.5.8).
TrainOnWhatName = Literal[
    "last_assistant_message",
    "last_assistant_turn",
    "all_assistant_messages",
    "all_messages",
    "all_tokens",
    "all_user_and_system_messages",
    "customized",
]


class _Section(BaseModel):
    # chief.toml is TOML: its values come typed, so none is coerced (`trust_remote_code = "yes"`
    # is refused, not taken as true) and no number may be inf or nan.
    model_config = ConfigDict(
        extra="forbid", validate_assignment=True, strict=True, allow_inf_nan=False
    )


class DataConfig(_Section):
    """Training data, relative to the project directory."""

    train: str = Field(
        ..., description="Training JSONL (conversations, prompt/answer, preferences or RL prompts)."
    )
    val: str | None = Field(
        None, description="Held-out JSONL of the same format; used for NLL and product evals."
    )
    train_on_what: TrainOnWhatName = Field(
        "all_assistant_messages",
        description="Which tokens carry loss (the cookbook's TrainOnWhat).",
    )
    max_length: int = Field(2048, ge=16, description="Longest rendered example in tokens.")
    truncation: Literal["truncate", "drop"] = Field(
        "truncate", description="What happens to longer examples: cut at max_length, or skip them."
    )


class LoraConfig(_Section):
    """Where LoRA adapters go and how big they are (create_lora_training_client arguments)."""

    rank: int = Field(32, ge=1, le=1024, description="LoRA rank.")
    train_mlp: bool = Field(True, description="Adapt MLP (and MoE expert) layers.")
    train_attn: bool = Field(True, description="Adapt attention projections.")
    train_unembed: bool = Field(True, description="Adapt the unembedding (LM head).")

    @model_validator(mode="after")
    def _some_target(self) -> LoraConfig:
        if not (self.train_mlp or self.train_attn or self.train_unembed):
            raise ValueError("at least one of train_mlp, train_attn, train_unembed must be true")
        return self


class OptimizerConfig(_Section):
    """AdamW settings (tinker.AdamParams)."""

    learning_rate: float = Field(..., gt=0, description="Peak learning rate.")
    beta1: float = Field(0.9, ge=0, lt=1, description="Adam beta1.")
    beta2: float = Field(0.95, ge=0, lt=1, description="Adam beta2.")
    eps: float = Field(1e-8, gt=0, description="Adam epsilon.")
    weight_decay: float = Field(0.0, ge=0, description="Decoupled weight decay.")
    grad_clip_norm: float = Field(1.0, ge=0, description="Global gradient-norm clip; 0 disables.")


class ScheduleConfig(_Section):
    """Batching and the learning-rate schedule."""

    batch_size: int = Field(..., ge=1, description="Examples (SL/DPO) per optimizer step.")
    epochs: int | None = Field(
        1, ge=1, description="Passes over the training data (ignored when steps is set)."
    )
    steps: int | None = Field(
        None, ge=1, description="Total optimizer steps; when set it wins over epochs."
    )
    lr_schedule: Literal["linear", "cosine", "constant"] = Field(
        "linear", description="Decay after warmup."
    )
    warmup_steps: int = Field(0, ge=0, description="Linear warmup steps.")

    @model_validator(mode="after")
    def _epochs_or_steps(self) -> ScheduleConfig:
        if self.epochs is None and self.steps is None:
            raise ValueError("set epochs or steps (or both)")
        return self


class CheckpointConfig(_Section):
    every_steps: int = Field(
        20, ge=0, description="Save a resumable checkpoint every N steps; 0 only at the end."
    )
    ttl_days: int = Field(
        7,
        ge=0,
        le=3652,
        description="Days a new checkpoint's weights are kept unless promoted "
        "(Tinker's default, 7); promotion to staging/prod keeps them, retiring starts the clock "
        "again; 0 keeps all forever.",
    )


class InlineEvalConfig(_Section):
    """Sparse evals during training (doctrine 6)."""

    nll_every_steps: int = Field(10, ge=0, description="Validation NLL every N steps; 0 disables.")
    sampled_every_steps: int = Field(
        0, ge=0, description="Small generative smoke test every N steps; 0 disables."
    )
    sampled_task: str | None = Field(
        None, description="Name of the eval-suite task used for the smoke test."
    )


class RLConfig(_Section):
    group_size: int = Field(
        4, ge=1, description="Samples per prompt (advantages are relative within a group)."
    )
    groups_per_batch: int = Field(8, ge=1, description="Prompts per optimizer step.")
    max_tokens: int = Field(64, ge=1, description="Most tokens sampled per answer.")
    temperature: float = Field(1.0, gt=0, description="Sampling temperature for rollouts.")
    kl_penalty_coef: float = Field(
        0.0, ge=0, description="KL penalty against the base model; 0 disables."
    )
    loss_fn: Literal["importance_sampling", "ppo", "cispo"] = Field(
        "importance_sampling", description="The SDK loss the rollouts train with."
    )
    grader: str = Field(
        "normalized_exact",
        description="Reward: an evals grader spec (1.0 if correct); `chief init` picks it from the "
        "answers (numbers: numeric, letters: multiple_choice, short text: normalized_exact, free "
        "text: llm_judge).",
    )
    judge_model: str | None = Field(
        None, description="Judge for an llm_judge reward; unset: the base model judges."
    )
    signal_check_steps: int = Field(
        2,
        ge=0,
        description="Steps after which a run whose groups all had equal rewards (no learning "
        "signal) is checked; 0 disables the check.",
    )
    on_zero_signal: Literal["stop", "warn"] = Field(
        "stop",
        description="What a run with no signal after signal_check_steps does: stop (resumable "
        "with --resume) or warn and go on.",
    )

    @field_validator("grader")
    @classmethod
    def _buildable_grader(cls, spec: str) -> str:
        return checked_grader(spec)


class DPOConfig(_Section):
    beta: float = Field(0.1, gt=0, description="DPO beta (strength of the reference-model anchor).")


class DistillConfig(_Section):
    teacher_model: str | None = Field(
        None, description="Teacher model; defaults to the base model."
    )
    teacher_prompt: str | None = Field(
        None, description="System prompt given to the teacher only (prompt distillation)."
    )
    max_tokens: int = Field(64, ge=1, description="Most tokens of each teacher answer.")
    temperature: float = Field(
        0.0, ge=0, description="Teacher sampling temperature (0: greedy labels)."
    )


class BackendConfig(_Section):
    kind: Literal["local", "tinker"] | None = Field(
        None,
        description="local (chief's engine) or tinker (Tinker's cloud, needs TINKER_API_KEY); "
        "unset: Tinker's cloud when TINKER_API_KEY is set, else a local engine. Flags and "
        "$CHIEF_ENGINE_URL/$TINKER_BASE_URL win.",
    )
    base_url: str | None = Field(
        None, description="URL of a running engine (kind local) or of Tinker's service."
    )


class EstimatesConfig(_Section):
    """Overrides for the plan's cost and time estimates."""

    prices_file: str | None = Field(
        None, description="Price table (TOML) replacing the shipped one."
    )
    local_train_tokens_per_s: float | None = Field(
        None, gt=0, description="Measured local training throughput."
    )
    local_sample_tokens_per_s: float | None = Field(
        None, gt=0, description="Measured local sampling throughput."
    )


class BudgetConfig(_Section):
    """What the project may spend, counted in tokens and priced at the price table
    (docs/COST.md)."""

    max_usd: float | None = Field(
        None,
        ge=0,
        description="US dollars of work (at the price table) the project may use; unset: no limit.",
    )
    max_tokens: int | None = Field(
        None,
        ge=0,
        description="Tokens (trained + prefilled + sampled) the project may use; unset: no limit.",
    )


TrackerName = Literal["none", "trackio", "wandb", "mlflow"]
TRACKERS: tuple[TrackerName, ...] = ("none", "trackio", "wandb", "mlflow")


class TrackingConfig(_Section):
    """The experiment tracker runs, sweeps, evals and verdicts are mirrored to (`tracking`).
    Unset fields fall back to the library's own environment variables, then local defaults."""

    backend: TrackerName = Field(
        "none",
        description="none | trackio | wandb | mlflow; `--track NAME` wins. The tracker mirrors "
        "the runs and the registry, which stay the record.",
    )
    project: str | None = Field(
        None,
        description="Trackio / W&B project; unset: $WANDB_PROJECT (W&B), else `name`.",
    )
    entity: str | None = Field(None, description="W&B entity (user or team); unset: $WANDB_ENTITY.")
    experiment: str | None = Field(
        None,
        description="MLflow experiment; unset: $MLFLOW_EXPERIMENT_NAME, `project`, else `name`.",
    )
    uri: str | None = Field(
        None,
        description="MLflow URI; unset: $MLFLOW_TRACKING_URI, else SQLite in .chief/tracking.",
    )


class ProjectConfig(_Section):
    """The whole of `chief.toml` (typed as each of its sections is)."""

    schema_version: int = Field(SCHEMA_VERSION, description="Version of this file's schema.")
    name: str = Field(
        ...,
        min_length=1,
        description="Project name: the name its checkpoints are registered under (letters, "
        "digits, '_', '.', '-' or '/').",
    )
    base_model: str = Field(
        ..., min_length=1, description="Base model name (catalog name, local dir or hub id)."
    )
    renderer: str = Field(
        ..., min_length=1, description="Cookbook renderer name for the chat format."
    )
    trust_remote_code: bool = Field(
        False,
        description="Run the base model's own Python code (an auto_map in its tokenizer or config) "
        "when loading it; `chief init --trust-remote-code` sets it.",
    )
    recipe: Recipe = Field("sl", description="The training recipe: sl | rl | dpo | distill.")
    use_case: UseCase = Field(
        "chat", description="chat | code | math | agent (chooses the eval template)."
    )
    seed: int = Field(0, description="Seed for shuffling and sampling.")
    license: str | None = Field(
        None,
        min_length=1,
        description="License of the models the project publishes, as a Hugging Face license id "
        "(apache-2.0, mit, llama3.1, other, ...); written into model cards, and `chief publish` "
        "needs it.",
    )
    registry: str = Field(
        str(REGISTRY), description="Model registry (SQLite), relative to the project."
    )
    data: DataConfig
    lora: LoraConfig = Field(default_factory=LoraConfig)
    optimizer: OptimizerConfig
    schedule: ScheduleConfig
    checkpoints: CheckpointConfig = Field(default_factory=CheckpointConfig)
    inline_evals: InlineEvalConfig = Field(default_factory=InlineEvalConfig)
    rl: RLConfig = Field(default_factory=RLConfig)
    dpo: DPOConfig = Field(default_factory=DPOConfig)
    distill: DistillConfig = Field(default_factory=DistillConfig)
    backend: BackendConfig = Field(default_factory=BackendConfig)
    estimates: EstimatesConfig = Field(default_factory=EstimatesConfig)
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    eval_suite: EvalSuite
    gate: GateRules = Field(default_factory=GateRules, description="Promotion-gate rules.")

    @field_validator("name")
    @classmethod
    def _registrable_name(cls, name: str) -> str:
        # The name checkpoints are registered under: refused here, not at a run's first checkpoint.
        problem = model_name_problem(name)
        if problem is not None:
            raise ValueError(problem)
        return name

    @field_validator("schema_version")
    @classmethod
    def _known_schema(cls, value: int) -> int:
        if value > SCHEMA_VERSION:
            raise ValueError(
                f"schema {value} is newer than this chief understands ({SCHEMA_VERSION}); "
                "upgrade chief"
            )
        return value

    def gate_dict(self) -> dict[str, object]:
        """The gate rules as plain data."""
        return self.gate.model_dump(mode="json")

    def suite_requirement(self) -> SuiteRequirement:
        """The agreed eval suite as the promotion gate reads it (with `gate`, what `promote`
        judges by)."""
        return SuiteRequirement.from_suite(self.eval_suite)


@dataclass(frozen=True)
class Project:
    """A loaded project: where it lives and what it says."""

    root: Path
    config: ProjectConfig

    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_FILENAME

    def path(self, relative: str | Path) -> Path:
        """Resolve a path from `chief.toml` (relative to the project directory)."""
        candidate = Path(relative).expanduser()
        return candidate if candidate.is_absolute() else self.root / candidate

    @property
    def train_path(self) -> Path:
        return self.path(self.config.data.train)

    @property
    def val_path(self) -> Path | None:
        return self.path(self.config.data.val) if self.config.data.val else None

    @property
    def registry_path(self) -> Path:
        return registry_file(self.root, self.config.registry)

    @property
    def renderer_choice(self) -> RendererChoice:
        """chief.toml's `renderer` for the base model the project trains: what its evals and
        playground render that model's prompts with (other models keep their own)."""
        return RendererChoice(self.config.renderer, self.config.base_model)


def _format_location(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts[-1:] = [f"{parts[-1]}[{item}]"] if parts else [f"[{item}]"]
        else:
            parts.append(str(item))
    return ".".join(parts) or "(top level)"


def _expected(error: ErrorDetails) -> str:
    kind = error.get("type", "")
    if kind == "missing":
        return "a value (the key is missing)"
    if kind == "extra_forbidden":
        return "no such key (unknown setting; check the spelling)"
    least = (error.get("ctx") or {}).get("min_length")
    if kind == "string_too_short":
        return f"at least {least} character{'s' if least != 1 else ''}"
    if kind == "too_short":
        return f"at least {least} item{'s' if least != 1 else ''}"
    message = (
        str(error.get("msg", "")).removeprefix("Value error, ").removeprefix("Input should be ")
    )
    return message[:1].lower() + message[1:]


def config_errors(error: ValidationError, source: Path | str) -> ConfigurationError:
    """Convert a pydantic error into one naming the file, each dotted field and the expectation."""
    reasons = []
    for item in error.errors():
        field = _format_location(item.get("loc", ()))
        got = item.get("input")
        got_text = (
            "" if item.get("type") in ("missing",) or isinstance(got, dict) else f", got {got!r}"
        )
        reasons.append(f"field `{field}`: expected {_expected(item)}{got_text}")
    count = len(reasons)
    message = f"{source}: {reasons[0]}" if count == 1 else f"{source}: {count} invalid fields"
    return ConfigurationError(message, reasons=reasons if count > 1 else ())


def _migrate(data: Mapping[str, object], source: Path | str) -> Mapping[str, object]:
    """The table at the current schema: the keys older chiefs wrote under their current names,
    with a note each, so `save_project` writes the file anew.

    `task` named the training recipe until `--task` came to mean an eval task everywhere; it is
    read as `recipe` until the next release.
    """
    version = data.get("schema_version", SCHEMA_VERSION)
    if isinstance(version, int) and version < SCHEMA_VERSION:
        data = {**data, "schema_version": SCHEMA_VERSION}
    if "task" not in data:
        return data
    if "recipe" in data:
        raise ConfigurationError(
            f"{source}: field `task`: expected no such key beside `recipe` "
            "(`task` is its old name; remove it)"
        )
    warnings.warn(
        f"{source}: `task = {json.dumps(data['task'])}` is the old name of `recipe`; "
        "rename the key (`task` is read until the next release)",
        ChiefDeprecation,
        stacklevel=3,
    )
    return {("recipe" if key == "task" else key): value for key, value in data.items()}


def parse_config(data: Mapping[str, object], source: Path | str = CONFIG_FILENAME) -> ProjectConfig:
    """Validate a parsed `chief.toml` table (old key names read with a `ChiefDeprecation` note)."""
    try:
        return ProjectConfig.model_validate(_migrate(data, source))
    except ValidationError as exc:
        raise config_errors(exc, source) from None


def load_project(directory: str | Path) -> Project:
    """Read `<directory>/chief.toml` (or the file itself) into a `Project`."""
    path = Path(directory).expanduser()
    config_path = path if path.name == CONFIG_FILENAME or path.is_file() else path / CONFIG_FILENAME
    if not config_path.is_file():
        raise ConfigurationError(f"{config_path}: not found; create a project with `chief init`")
    return Project(
        root=config_path.parent.resolve(), config=parse_config(read_toml(config_path), config_path)
    )
