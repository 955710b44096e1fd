"""`make_plan(project) -> Plan`: data + base model + use case -> a plan with reasons.

Reads the project's data with `planning.data_formats`, renders it with the model's renderer
(`planning.tokens`), and applies the doctrine (`planning.hyperparams`, `planning.capacity`,
`planning.estimates`). The `Plan` (pydantic) is what `plan.json` holds; `planning.plan_markdown`
renders it as plan.md. Settings come from chief.toml; where they differ from the
recommendation the plan says so in `warnings` rather than overriding the user.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
from pydantic import BaseModel, Field

from tinker_chief import __version__
from tinker_chief.errors import ChiefError, ConfigurationError, DataError, ModelNotFoundError
from tinker_chief.planning import capacity as cap
from tinker_chief.planning import hyperparams as hp
from tinker_chief.planning.calibration import calibrated
from tinker_chief.planning.config import Project
from tinker_chief.planning.data_formats import (
    RECIPE_FORMATS,
    Conversation,
    Preference,
    Record,
    RLPrompt,
    as_conversations,
    format_of_record,
    read_records,
)
from tinker_chief.planning.estimates import (
    CostEstimate,
    Prices,
    TimeEstimate,
    TokenWork,
    local_time,
    price_of,
    tinker_cost,
)
from tinker_chief.planning.eval_cost import EvalSamplingEstimate, estimate_eval_sampling
from tinker_chief.planning.rewards import RewardSummary, reward_summary
from tinker_chief.planning.templates import LAYER_PURPOSE
from tinker_chief.planning.tokens import TokenCounts, count_tokens

if TYPE_CHECKING:
    from tinker_cookbook.renderers import Renderer

PLAN_SCHEMA_VERSION = 2  # 2: `task` renamed `recipe`


class LengthStats(BaseModel):
    min: int
    mean: float
    p50: int
    p90: int
    p99: int
    max: int


class TokenizerSummary(BaseModel):
    """Which tokenizer counted the tokens, and how far off a proxy's counts may be."""

    source: str = Field(..., description="model (its own files), local HF cache, hub, or proxy")
    name: str
    estimate: bool
    error_bound: float | None = Field(
        None, description="relative bound on every token figure when estimated"
    )
    bound_rule: str | None = None
    could_flip_rank: bool | None = Field(
        None, description="whether the bound could change the recommended rank"
    )


class DataProfile(BaseModel):
    train_file: str
    val_file: str | None
    format: str
    examples: int
    val_examples: int | None
    sequences_rendered: int = Field(
        ..., description="Rendered sequences (DPO renders chosen and rejected)."
    )
    total_tokens: int = Field(
        ..., description="Rendered tokens of the examples kept, after truncation."
    )
    completion_tokens: int = Field(
        ..., description="Trained (weight>0) target tokens kept, after truncation."
    )
    train_on_what: str
    max_length: int
    over_max_length: int
    truncation: str
    truncation_effect: str
    lengths: LengthStats
    counting_method: str
    rule: str
    tokenizer: TokenizerSummary


class CapacityRowModel(BaseModel):
    rank: int
    attn: int
    mlp: int
    experts: int | None
    unembed: int
    total: int
    capacity_ratio: float | None


class CapacitySummary(BaseModel):
    source: str
    per_rank: dict[str, int | None]
    table: list[CapacityRowModel]
    recommended_rank: hp.Recommendation[int]
    configured_rank: int
    capacity_ratio_at_configured_rank: float | None
    capacity_ratio_at_recommended_rank: float | None


class LearningRateSummary(BaseModel):
    recommended: hp.Recommendation[float] | None
    configured: float
    full_finetune_equivalent: float | None
    notes: list[str]


class ScheduleSummary(BaseModel):
    batch_size: hp.Recommendation[int]
    configured_batch_size: int
    epochs: hp.Recommendation[int]
    configured_epochs: int | None
    steps_per_epoch: int
    total_steps: int
    lr_schedule: str
    warmup_steps: int
    recommended_warmup: hp.Recommendation[int]


class EvalTaskSummary(BaseModel):
    name: str
    layer: str
    kind: str
    description: str
    inspect_task: str | None
    data: str | None
    settings: dict[str, object]


class EvalPlan(BaseModel):
    suite: str
    version: str
    layers: dict[str, str]
    tasks: list[EvalTaskSummary]


class Estimates(BaseModel):
    work: TokenWork
    tinker_cost: CostEstimate
    local_time: TimeEstimate
    eval_sampling: EvalSamplingEstimate | None = Field(
        None, description="One `chief eval` of the suite, per task"
    )
    eval_cost: CostEstimate | None = Field(
        None, description="Tinker cost of that eval (prefill + sample)"
    )
    prices: Prices | None = Field(
        None,
        description="The base model's Tinker $/M tokens (train, sample, "
        "prefill) with the table's date and source; None: no known price",
    )


class Plan(BaseModel):
    schema_version: int = PLAN_SCHEMA_VERSION
    created_at: str
    chief_version: str
    project: str
    base_model: str
    renderer: str
    recipe: str
    use_case: str
    data: DataProfile
    capacity: CapacitySummary
    learning_rate: LearningRateSummary
    placement: hp.Recommendation[dict[str, bool]]
    schedule: ScheduleSummary
    estimates: Estimates
    eval_suite: EvalPlan
    warnings: list[str]
    reward: RewardSummary | None = Field(None, description="RL only: the reward grader and why")


def _read(path: Path, recipe: str) -> list[Record]:
    return read_records(path, RECIPE_FORMATS[recipe])


def _sequences(records: list[Record], recipe: str) -> list[Conversation]:
    if recipe == "dpo":
        pairs = [r for r in records if isinstance(r, Preference)]
        return [c for p in pairs for c in (p.chosen_conversation(), p.rejected_conversation())]
    return as_conversations(records)


def _check_trainable_flags(conversations: list[Conversation], train_on_what: str) -> None:
    """The cookbook asserts `trainable` exactly when train_on_what is customized; say it first."""
    customized = train_on_what == "customized"
    for conv in conversations:
        for index, message in enumerate(conv.messages):
            if customized != ("trainable" in message):
                expected = (
                    "a `trainable` flag (train_on_what = customized)"
                    if customized
                    else 'no `trainable` flag unless data.train_on_what = "customized"'
                )
                raise DataError(
                    f'{conv.source}: field "messages[{index}].trainable": expected {expected}'
                )


def _length_stats(lengths: list[int]) -> LengthStats:
    arr = np.asarray(lengths)
    return LengthStats(
        min=int(arr.min()),
        mean=round(float(arr.mean()), 1),
        p50=int(np.percentile(arr, 50)),
        p90=int(np.percentile(arr, 90)),
        p99=int(np.percentile(arr, 99)),
        max=int(arr.max()),
    )


def _data_summary(
    project: Project,
    records: list[Record],
    val_count: int | None,
    counts: TokenCounts,
    fmt: str,
    tokenizer: TokenizerSummary,
    renderer_name: str,
) -> tuple[DataProfile, list[int]]:
    cfg = project.config.data
    over = [i for i, n in enumerate(counts.total) if n > cfg.max_length]
    if cfg.truncation == "drop":
        keep = [i for i, n in enumerate(counts.total) if n <= cfg.max_length]
        total = sum(counts.total[i] for i in keep)
        completion = sum(counts.completion[i] for i in keep)
        effect = f"{len(over)} sequences longer than {cfg.max_length} tokens are dropped"
    else:
        keep = list(range(len(counts.total)))
        total = sum(min(n, cfg.max_length) for n in counts.total)
        completion = sum(counts.completion_kept)
        effect = (
            f"{len(over)} sequences longer than {cfg.max_length} tokens are truncated to "
            f"{cfg.max_length}"
        )
    if not keep:
        raise DataError(
            f"{project.train_path}: every example is longer than data.max_length = "
            f'{cfg.max_length} and data.truncation = "drop"; nothing left to train on'
        )
    summary = DataProfile(
        train_file=cfg.train,
        val_file=cfg.val,
        format=fmt,
        examples=len(records),
        val_examples=val_count,
        sequences_rendered=len(counts.total),
        total_tokens=total,
        completion_tokens=completion,
        train_on_what=cfg.train_on_what,
        max_length=cfg.max_length,
        over_max_length=len(over),
        truncation=cfg.truncation,
        truncation_effect=effect,
        lengths=_length_stats(counts.total),
        counting_method=counts.method,
        tokenizer=tokenizer,
        rule=f"rendered with renderer `{renderer_name}`; trained tokens are the weight-1 targets "
        f"of build_supervised_example(train_on_what={cfg.train_on_what})",
    )
    return summary, keep


class PlanningModel(NamedTuple):
    """What a plan needs of the base model: the renderer that counts tokens, its config (None
    for a lineup model planned by the proxy), which tokenizer counted, and the renderer's name."""

    renderer: Renderer
    config: cap.ModelConfig | None
    tokenizer: TokenizerSummary
    renderer_name: str


def load_planning_model(
    base_model: str,
    renderer: str,
    *,
    trust_remote_code: bool = False,
) -> PlanningModel:
    """The base model's config and tokenizer, as `make_plan` uses them; any unreadable file is one
    error (`chief init` calls this before it writes anything). `trust_remote_code`: the model's
    own code may run (else a model whose tokenizer is code is refused)."""
    from tinker_chief.models import get_renderer, load_model_config, load_tokenizer, resolve_model

    if resolve_model(base_model).source == "cloud":
        return _load_cloud_model(base_model, renderer, trust_remote_code)
    try:
        config = load_model_config(base_model)
        tokenizer = load_tokenizer(base_model, trust_remote_code=trust_remote_code)
    except ChiefError:
        raise
    except Exception as exc:  # transformers raises many types for unreadable files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigurationError(
            f"cannot make a plan: the config or tokenizer of {base_model} is unreadable ({first})"
        ) from None
    summary = TokenizerSummary(source="model", name=base_model, estimate=False)
    return PlanningModel(get_renderer(renderer, tokenizer), config, summary, renderer)


def _load_cloud_model(name: str, renderer: str, trust_remote_code: bool) -> PlanningModel:
    """A model without local weights (Tinker's lineup, or any hub id): its config and own tokenizer
    from the HF cache, or fetched from the hub when online (`models.hub`, never weights). Without
    them a lineup model is still planned from the cookbook's numbers, its tokens counted by the
    documented proxy (estimates within PROXY_ERROR_BOUND); any other model has no numbers without
    its files, so their error (naming them and `chief models fetch`) stands."""
    from tinker_chief.models import get_renderer, hub, lineup, load_model_config, load_tokenizer
    from tinker_chief.planning import tokens

    try:
        fetched = hub.hub_files(name, trust_remote_code=trust_remote_code).fetched
        config = load_model_config(name)
        tokenizer = load_tokenizer(name, trust_remote_code=trust_remote_code)
    except ModelNotFoundError:
        if lineup.lineup_name(name) is None:
            raise
        proxy = load_tokenizer(tokens.PROXY_TOKENIZER_MODEL)
        proxy_name = f"{tokens.PROXY_TOKENIZER_MODEL} (renderer {tokens.PROXY_RENDERER})"
        summary = TokenizerSummary(
            source="proxy",
            name=proxy_name,
            estimate=True,
            error_bound=tokens.PROXY_ERROR_BOUND,
            bound_rule=tokens.PROXY_BOUND_RULE,
        )
        proxy_renderer = get_renderer(tokens.PROXY_RENDERER, proxy)
        return PlanningModel(proxy_renderer, None, summary, tokens.PROXY_RENDERER)
    summary = TokenizerSummary(
        source="hub" if fetched else "local HF cache", name=name, estimate=False
    )
    return PlanningModel(get_renderer(renderer, tokenizer), config, summary, renderer)


def _flip_check(
    tokenizer: TokenizerSummary, project: Project, config: cap.ModelConfig | None, completion: int
) -> TokenizerSummary:
    """Whether the proxy's error bound could change the recommended rank."""
    if (
        not tokenizer.estimate
        or tokenizer.error_bound is None
        or project.config.recipe in ("rl", "distill")
    ):
        return tokenizer
    shape, placement = _shape_and_placement(project, config)
    recipe, bound = project.config.recipe, tokenizer.error_bound
    ranks = {
        hp.recommend_rank(recipe, shape, round(completion * factor), placement)[0].value
        for factor in (1 - bound, 1.0, 1 + bound)
    }
    return tokenizer.model_copy(update={"could_flip_rank": len(ranks) > 1})


def _shape_and_placement(
    project: Project, config: cap.ModelConfig | None
) -> tuple[cap.LoraShape, dict[str, bool]]:
    """The base model's LoRA counts and the project's placement flags."""
    lora = project.config.lora
    placement = {
        "train_mlp": lora.train_mlp,
        "train_attn": lora.train_attn,
        "train_unembed": lora.train_unembed,
    }
    shape = cap.lora_shape(
        project.config.base_model, load_config=lambda _name: _require_config(project, config)
    )
    return shape, placement


def _require_config(project: Project, config: cap.ModelConfig | None) -> cap.ModelConfig:
    if config is None:
        name = project.config.base_model
        raise ConfigurationError(
            f"cannot plan {name}: the cookbook has no LoRA counts for it and its config.json "
            f"is not in the local Hugging Face cache (fetch it with `chief models fetch {name}`)"
        )
    return config


def _capacity(
    project: Project, config: cap.ModelConfig | None, completion: int
) -> tuple[CapacitySummary, list[str]]:
    lora = project.config.lora
    shape, placement = _shape_and_placement(project, config)
    rank, warnings = hp.recommend_rank(project.config.recipe, shape, completion, placement)
    table = cap.capacity_table(shape, completion, **placement)

    def ratio(r: int) -> float | None:
        return round(shape.params(r, **placement) / completion, 4) if completion else None

    summary = CapacitySummary(
        source=shape.source,
        per_rank={
            "attn": shape.attn,
            "mlp": shape.mlp,
            "experts": shape.experts,
            "unembed": shape.unembed,
        },
        table=[
            CapacityRowModel(
                **{
                    **row.__dict__,
                    "capacity_ratio": None
                    if row.capacity_ratio is None
                    else round(row.capacity_ratio, 4),
                }
            )
            for row in table
        ],
        recommended_rank=rank,
        configured_rank=lora.rank,
        capacity_ratio_at_configured_rank=ratio(lora.rank),
        capacity_ratio_at_recommended_rank=ratio(rank.value),
    )
    if lora.rank != rank.value:
        recommends = f"the plan recommends {rank.value} ({rank.rule})"
        warnings.append(f"chief.toml has lora.rank = {lora.rank}; {recommends}")
    if (
        project.config.recipe in ("sl", "dpo")
        and completion
        and shape.params(lora.rank, **placement) < completion
    ):
        warnings.append(
            f"capacity: rank {lora.rank} gives {shape.params(lora.rank, **placement):,} LoRA "
            f"params for {completion:,} completion tokens (ratio {ratio(lora.rank)}); LoRA may "
            "underperform"
        )
    return summary, warnings


def _learning_rate(
    project: Project, config: cap.ModelConfig | None, steps: int
) -> tuple[LearningRateSummary, list[str]]:
    warnings: list[str] = []
    try:
        rec: hp.Recommendation[float] | None = hp.recommend_lr(project.config.base_model, config)
    except ConfigurationError as exc:
        rec = None
        warnings.append(f"learning rate: {exc}; using chief.toml's value as given")
    configured = project.config.optimizer.learning_rate
    if rec is not None and not 0.5 <= configured / rec.value <= 2.0:
        warnings.append(
            f"chief.toml has optimizer.learning_rate = {configured:g}; the plan recommends "
            f"{rec.value:.4g} ({rec.source})"
        )
    full = round(rec.value / 10.0, 10) if rec is not None else None
    return LearningRateSummary(
        recommended=rec,
        configured=configured,
        full_finetune_equivalent=full,
        notes=hp.lr_notes(steps, project.config.recipe),
    ), warnings


def _schedule(project: Project, examples: int) -> tuple[ScheduleSummary, list[str]]:
    cfg = project.config
    batch = hp.recommend_batch_size(cfg.recipe, examples, cfg.rl)
    epochs = hp.recommend_epochs(cfg.recipe, examples)
    unit = cfg.rl.groups_per_batch if cfg.recipe == "rl" else cfg.schedule.batch_size
    per_epoch, total = hp.steps_for(examples, unit, cfg.schedule.epochs, cfg.schedule.steps)
    warnings = []
    if cfg.recipe != "rl" and cfg.schedule.batch_size > hp.LARGE_BATCH_WARNING:
        warnings.append(
            f"batch_size {cfg.schedule.batch_size} > {hp.LARGE_BATCH_WARNING}: LoRA degrades "
            "with very large batches more than full fine-tuning does; prefer a moderate batch"
        )
    if cfg.recipe != "rl" and cfg.schedule.batch_size > examples:
        warnings.append(
            f"batch_size {cfg.schedule.batch_size} exceeds the {examples} examples: one "
            "partial step"
        )
    summary = ScheduleSummary(
        batch_size=batch,
        configured_batch_size=cfg.schedule.batch_size,
        epochs=epochs,
        configured_epochs=cfg.schedule.epochs,
        steps_per_epoch=per_epoch,
        total_steps=total,
        lr_schedule=cfg.schedule.lr_schedule,
        warmup_steps=cfg.schedule.warmup_steps,
        recommended_warmup=hp.recommend_warmup(total),
    )
    return summary, warnings


def _work(project: Project, data: DataProfile, schedule: ScheduleSummary) -> TokenWork:
    cfg = project.config
    if cfg.recipe == "rl":
        requests = schedule.total_steps * cfg.rl.groups_per_batch  # one sample request per problem
        rollouts = requests * cfg.rl.group_size
        prompt = int(data.lengths.mean)
        sampled = rollouts * cfg.rl.max_tokens
        # A request's prompt is prefilled once for its whole group (what training records, too).
        return TokenWork(
            train_tokens=rollouts * (prompt + cfg.rl.max_tokens),
            sample_tokens=sampled,
            prefill_tokens=requests * prompt,
        )
    mean_tokens = data.total_tokens / max(1, data.sequences_rendered)
    # DPO: a pair is two sequences, and its custom loss takes two passes (a forward for the
    # log-probs, then a forward-backward), each billed as training.
    per_step = cfg.schedule.batch_size * (4 if cfg.recipe == "dpo" else 1) * mean_tokens
    return TokenWork(train_tokens=int(per_step * schedule.total_steps))


def _eval_plan(project: Project) -> EvalPlan:
    suite = project.config.eval_suite
    tasks = [
        EvalTaskSummary(
            name=t.name,
            layer=t.layer,
            kind=t.kind,
            description=t.description,
            inspect_task=t.inspect_task,
            data=t.data,
            settings=t.settings.model_dump(),
        )
        for t in suite.tasks
    ]
    layers = {layer: LAYER_PURPOSE[layer] for layer in dict.fromkeys(t.layer for t in suite.tasks)}
    return EvalPlan(suite=suite.name, version=suite.version, layers=layers, tasks=tasks)


def make_plan(
    project: Project,
    *,
    allow_attention_only: bool = False,
    today: date | None = None,
    now: datetime | None = None,
    model: PlanningModel | None = None,
) -> Plan:
    """The plan for a project; raises a `ChiefError` with the reason when none can be made.
    `model`: the base model already loaded (`load_planning_model`), else it is loaded here."""
    cfg = project.config
    placement, warnings = hp.placement_check(
        cfg.lora.train_mlp, cfg.lora.train_attn, cfg.lora.train_unembed, allow_attention_only
    )
    records = _read(project.train_path, cfg.recipe)
    val_count = len(_read(project.val_path, cfg.recipe)) if project.val_path else None
    if model is None:
        trusted = cfg.trust_remote_code
        model = load_planning_model(cfg.base_model, cfg.renderer, trust_remote_code=trusted)
    renderer, model_config, tokenizer, renderer_name = model
    sequences = _sequences(records, cfg.recipe)
    if cfg.recipe != "rl":
        _check_trainable_flags(sequences, cfg.data.train_on_what)
    counts = count_tokens(sequences, renderer, cfg.data.train_on_what, cfg.data.max_length)
    fmt = format_of_record(records[0])
    data, keep = _data_summary(project, records, val_count, counts, fmt, tokenizer, renderer_name)
    data = data.model_copy(
        update={"tokenizer": _flip_check(tokenizer, project, model_config, data.completion_tokens)}
    )
    if data.tokenizer.estimate:
        flip = (
            "could change the recommended rank"
            if data.tokenizer.could_flip_rank
            else "does not change the recommended rank"
        )
        warnings.append(
            f"token counts are estimates: {cfg.base_model}'s tokenizer is not on this machine, so "
            f"{data.tokenizer.name} counted them (error bound "
            f"+/-{data.tokenizer.error_bound:.0%}, which {flip}); put the tokenizer in the HF "
            f"cache (`chief models fetch {cfg.base_model}`) for exact counts"
        )
    capacity, cap_warnings = _capacity(
        project, model_config, data.completion_tokens if cfg.recipe != "rl" else 0
    )
    examples = len(keep) // (2 if cfg.recipe == "dpo" else 1)
    schedule, sched_warnings = _schedule(project, examples)
    lr, lr_warnings = _learning_rate(project, model_config, schedule.total_steps)
    reward, reward_warnings = (
        reward_summary([r.answer for r in records if isinstance(r, RLPrompt)], cfg.rl.grader)
        if cfg.recipe == "rl"
        else (None, [])
    )
    work = _work(project, data, schedule)
    prices = project.path(cfg.estimates.prices_file) if cfg.estimates.prices_file else None
    evals = estimate_eval_sampling(cfg.eval_suite, project.root, renderer)
    estimates = Estimates(
        work=work,
        tinker_cost=tinker_cost(cfg.base_model, work, prices, today=today),
        local_time=local_time(
            cfg.base_model,
            work,
            train_tps=cfg.estimates.local_train_tokens_per_s,
            sample_tps=cfg.estimates.local_sample_tokens_per_s,
            measured_here=calibrated(project.root, cfg.base_model),
        ),
        eval_sampling=evals,
        eval_cost=tinker_cost(
            cfg.base_model,
            TokenWork(
                train_tokens=0,
                prefill_tokens=evals.prefill_tokens,
                sample_tokens=evals.sample_tokens,
            ),
            prices,
            today=today,
        ),
        prices=price_of(cfg.base_model, prices),
    )
    if data.over_max_length:
        warnings.append(data.truncation_effect)
    warnings += [
        f"eval task `{t.task}`: {t.problem} (`chief eval` fails on this task until it is fixed)"
        for t in evals.tasks
        if t.problem
    ]
    return Plan(
        created_at=(now or datetime.now(UTC)).isoformat(timespec="seconds"),
        chief_version=__version__,
        project=cfg.name,
        base_model=cfg.base_model,
        renderer=cfg.renderer,
        recipe=cfg.recipe,
        use_case=cfg.use_case,
        data=data,
        capacity=capacity,
        learning_rate=lr,
        placement=placement,
        schedule=schedule,
        estimates=estimates,
        eval_suite=_eval_plan(project),
        warnings=warnings + cap_warnings + sched_warnings + lr_warnings + reward_warnings,
        reward=reward,
    )
