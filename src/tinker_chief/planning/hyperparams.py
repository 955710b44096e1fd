"""The doctrine's numbers: LoRA rank, learning rate, placement, batch size and steps.

Each function returns a `Recommendation` (value, the rule that produced it, its source) so
plan.md can say why for every number. Sources: "LoRA Without Regret" (Thinking Machines, 2025)
and `tinker_cookbook.hyperparam_utils` 0.5.8.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Generic, TypeVar

from pydantic import BaseModel

from tinker_chief.errors import ConfigurationError
from tinker_chief.planning.capacity import RANKS, LoraShape, ModelConfig, text_part

if TYPE_CHECKING:
    from tinker_chief.planning.config import RLConfig

# What is recommended: a rank, batch size or step count (int), a learning rate (float), a
# grader's name (str), the LoRA placement flags (dict).
V = TypeVar("V")

BLOG = "LoRA Without Regret (thinkingmachines.ai/blog/lora)"
COOKBOOK_LR = "tinker_cookbook.hyperparam_utils.get_lr (cookbook 0.5.8)"
DEFAULT_RANK = 32  # the cookbook's default lora_rank (supervised/train.py Config)
RL_RANK = 8
# Our own measurement of the RL rank rule: reward curves at rank 1, 8 and 32 (and rank 1 with
# twice the steps) on one arithmetic task, written by bench/rl_rank.py.
RL_RANK_MEASURED = "docs/BENCHMARKS.md, 'RL at low LoRA rank' (bench/rl_rank.py)"
FAMILY_EXPONENT = {"llama": 0.781, "qwen": 0.0775}  # get_lr's exponents
# Sequences per step above which the plan warns (LoRA degrades at large batch).
LARGE_BATCH_WARNING = 256
SHORT_RUN_STEPS = 100


class Recommendation(BaseModel, Generic[V]):
    value: V
    rule: str
    source: str


def recommend_rank(
    recipe: str, shape: LoraShape, completion_tokens: int, placement: dict[str, bool]
) -> tuple[Recommendation[int], list[str]]:
    """Rank by capacity (supervised) or the RL/distillation rule; returns warnings too."""
    warnings: list[str] = []
    if recipe in ("rl", "distill"):
        why = "RL" if recipe == "rl" else "on-policy distillation"
        return Recommendation(
            value=RL_RANK,
            rule=(
                f"{why} carries ~1 bit of information per episode, so even rank 1 holds what a "
                f"run can learn; rank {RL_RANK} matches full fine-tuning with margin"
            ),
            source=f"{BLOG}; measured here: {RL_RANK_MEASURED}" if recipe == "rl" else BLOG,
        ), warnings
    params = {rank: shape.params(rank, **placement) for rank in RANKS}
    if params[DEFAULT_RANK] >= completion_tokens:
        rule = (
            f"the cookbook default rank {DEFAULT_RANK} already has LoRA params "
            f"({params[DEFAULT_RANK]:,}) >= completion tokens ({completion_tokens:,}): "
            "low-regret regime"
        )
        return Recommendation(
            value=DEFAULT_RANK, rule=rule, source=f"{BLOG}; cookbook default lora_rank"
        ), warnings
    enough = [rank for rank in RANKS if params[rank] >= completion_tokens]
    if enough:
        rank = enough[0]
        rule = (
            f"capacity: smallest power of two with LoRA params ({params[rank]:,}) >= completion "
            f"tokens ({completion_tokens:,}); rank {DEFAULT_RANK} would hold only "
            f"{params[DEFAULT_RANK]:,}"
        )
        return Recommendation(value=rank, rule=rule, source=BLOG), warnings
    top = RANKS[-1]
    warnings.append(
        f"capacity-constrained: even rank {top} has {params[top]:,} LoRA params for "
        f"{completion_tokens:,} completion tokens (ratio {params[top] / completion_tokens:.2f}); "
        "expect LoRA to underperform full fine-tuning. Options: fewer epochs, a full fine-tune, "
        "or split the data into separate adapters."
    )
    return Recommendation(
        value=top, rule=f"largest rank ({top}); capacity still short", source=BLOG
    ), warnings


def _family(model_name: str, config: ModelConfig | None) -> tuple[str | None, str]:
    """(family, how it was decided) from the config's model_type, else the name."""
    model_type = str((config or {}).get("model_type", "")).lower()
    for family in FAMILY_EXPONENT:
        if family in model_type:
            return family, f"config model_type `{model_type}`"
    for family in FAMILY_EXPONENT:
        if family in model_name.lower():
            return family, "the model name"
    return None, "unknown"


def _hidden_size(config: ModelConfig) -> int:
    hidden = text_part(config).get("hidden_size")
    if not isinstance(hidden, int):
        raise ConfigurationError("model config: field `hidden_size`: expected an integer")
    return hidden


def recommend_lr(model_name: str, config: ModelConfig | None) -> Recommendation[float]:
    """`get_lr(model, is_lora=True)` when the cookbook knows the model, else its formula from the
    config."""
    from tinker_chief.models.lineup import cookbook_lr, lineup_name
    from tinker_chief.planning.capacity import cookbook_shape

    if cookbook_shape(model_name) is not None or lineup_name(model_name) is not None:
        asked = cookbook_lr(model_name)
        if asked.value is not None:
            return Recommendation(
                value=asked.value,
                rule="get_lr(model, is_lora=True) = 5e-5 x 10 x (2000 / hidden)^P",
                source=COOKBOOK_LR,
            )
        if asked.hidden_size is not None:  # the cookbook knows the width but has no calibration
            return _uncalibrated_lr(
                asked.hidden_size,
                f"the cookbook's hidden size {asked.hidden_size}",
                asked.reason or "no calibration",
            )
        if config is None:
            raise ConfigurationError(f"no learning rate for {model_name}: {asked.reason}")
    if config is None:
        raise ConfigurationError(
            f"cannot recommend a learning rate for {model_name}: its config is unreadable"
        )
    hidden = _hidden_size(config)
    family, decided_by = _family(model_name, config)
    assumption = f"family {family} (from {decided_by})"
    if family is None:
        family = "llama"
        assumption = (
            "family unknown to the cookbook: assumed Llama-like (exponent 0.781); the formula is "
            "calibrated only for Llama and Qwen"
        )
    exponent = FAMILY_EXPONENT[family]
    lr = 5e-5 * 10.0 * (2000 / hidden) ** exponent
    rule = (
        f"cookbook get_lr formula applied to the config: 5e-5 x 10 x (2000 / {hidden})^{exponent}; "
        f"{assumption}; the cookbook does not list this model, so this extrapolates its calibration"
    )
    return Recommendation(value=lr, rule=rule, source=f"{COOKBOOK_LR} formula")


def _uncalibrated_lr(hidden: int, hidden_from: str, reason: str) -> Recommendation[float]:
    """The stated fallback where get_lr has no formula: its Llama exponent (the steeper of the two
    calibrated ones, so the smaller rate for wide models) applied to the hidden size."""
    exponent = FAMILY_EXPONENT["llama"]
    lr = 5e-5 * 10.0 * (2000 / hidden) ** exponent
    rule = (
        f"{reason}; fallback rule: the cookbook's Llama formula 5e-5 x 10 x "
        f"(2000 / {hidden})^{exponent} with {hidden_from}; uncalibrated for this model: set "
        "optimizer.learning_rate if you have a better value"
    )
    return Recommendation(value=lr, rule=rule, source=f"{COOKBOOK_LR} formula (fallback)")


# What the cookbook's own recipes use where get_lr (calibrated on supervised runs) is not the rule.
RECIPE_LR = {
    "rl": "rl_basic 4e-5, math_rl 1e-5",
    "dpo": "DPO 1e-5",
    "distill": "on-policy / prompt distillation 1e-4",
}


def lr_notes(steps: int, recipe: str = "sl") -> list[str]:
    notes = [
        "LoRA learning rate is ~10x the full fine-tune rate "
        "(get_lora_lr_over_full_finetune_lr = 10); the formula is independent of rank"
    ]
    if recipe in RECIPE_LR:
        notes.append(
            f"get_lr is calibrated on supervised fine-tuning; for recipe {recipe} the cookbook's "
            f"recipes use lower rates ({RECIPE_LR[recipe]}): consider setting "
            "optimizer.learning_rate accordingly"
        )
    if steps < SHORT_RUN_STEPS:
        notes.append(
            f"this run has {steps} steps (< ~{SHORT_RUN_STEPS}): short runs may want a higher "
            "learning rate than the formula gives"
        )
    return notes


def recommend_batch_size(
    recipe: str, examples: int, rl: RLConfig | None = None
) -> Recommendation[int]:
    """A moderate batch: ~1/100 of the data per step, a power of two in [8, 128]."""
    if recipe == "rl":
        return Recommendation(
            value=rl.groups_per_batch if rl else 8,
            rule="RL batches are groups_per_batch prompts x group_size samples",
            source="cookbook rl/train.py",
        )
    target = max(1, examples // 100)
    size = min(128, max(8, 2 ** math.ceil(math.log2(target)) if target > 1 else 8))
    size = min(size, max(1, examples))
    rule = (
        f"moderate batch scaled to the data: power of two near examples/100 ({examples:,}/100), "
        "kept within 8..128 because LoRA is less tolerant of large batches than full fine-tuning"
    )
    return Recommendation(value=size, rule=rule, source=BLOG)


def recommend_epochs(recipe: str, examples: int) -> Recommendation[int]:
    if recipe == "rl":
        return Recommendation(
            value=1, rule="RL: one pass over the prompts", source="cookbook rl/train.py"
        )
    if examples < 1000:
        return Recommendation(
            value=3,
            rule="small dataset (< 1,000 examples): 3 epochs to see each example enough",
            source="chief default (cpu-feasibility study: 200 examples x 3 epochs)",
        )
    return Recommendation(
        value=1, rule="1 epoch (cookbook default num_epochs)", source="cookbook supervised/train.py"
    )


def steps_for(
    examples: int, batch_size: int, epochs: int | None, steps: int | None
) -> tuple[int, int]:
    """(steps per epoch, total steps); partial batches are dropped as the cookbook's datasets do."""
    per_epoch = max(1, examples // max(1, batch_size))
    total = steps if steps is not None else per_epoch * (epochs or 1)
    return per_epoch, total


def recommend_warmup(total_steps: int) -> Recommendation[int]:
    warmup = min(20, round(0.05 * total_steps))
    return Recommendation(
        value=warmup,
        rule="5% of the steps, at most 20, then the schedule's decay",
        source="chief default (the cookbook's schedules start at the peak rate)",
    )


def placement_check(
    train_mlp: bool, train_attn: bool, train_unembed: bool, allow_attention_only: bool
) -> tuple[Recommendation[dict[str, bool]], list[str]]:
    """MLP + attention + unembedding by default; attention-only is refused unless allowed."""
    warnings: list[str] = []
    if train_attn and not train_mlp:
        reason = (
            "attention-only LoRA underperforms even at matched parameter count: the MLP (and MoE "
            "experts) hold most of what fine-tuning changes"
        )
        if not allow_attention_only:
            raise ConfigurationError(
                f"chief.toml: field `lora.train_mlp`: expected true; {reason} "
                "(pass --allow-attention-only to plan it anyway)"
            )
        warnings.append(f"attention-only LoRA allowed by --allow-attention-only: {reason}")
    if not train_mlp:
        warnings.append(
            "LoRA is off on the MLP layers, where most capacity and most of the gain are"
        )
    value = {"train_mlp": train_mlp, "train_attn": train_attn, "train_unembed": train_unembed}
    return Recommendation(
        value=value,
        rule="LoRA on MLP (and MoE experts), attention and the unembedding; avoid attention-only",
        source=BLOG,
    ), warnings
