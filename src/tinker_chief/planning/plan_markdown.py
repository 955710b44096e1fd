"""`render_plan_markdown(plan)`: plan.md, the plan for people (`make_plan` builds the `Plan`).

Every number is printed with the rule that produced it and its source; the same facts are in
plan.json for tools. Pure formatting: no reads, no decisions.
"""

from __future__ import annotations

from typing import TypeVar

from tinker_chief.planning.hyperparams import Recommendation
from tinker_chief.planning.planner import Plan, TokenizerSummary

_V = TypeVar("_V")


def _same(configured: object, recommended: object) -> bool:
    if isinstance(configured, float) and isinstance(recommended, float):
        # chief.toml keeps 3 significant digits
        return abs(configured - recommended) <= 0.01 * abs(recommended)
    return configured == recommended


def duration(seconds: float) -> str:
    return f"{seconds:,.0f} s" if seconds < 120 else f"{seconds / 60:,.1f} min"


def _rec(label: str, rec: Recommendation[_V], configured: object | None = None) -> str:
    value = f"{rec.value:.4g}" if isinstance(rec.value, float) else str(rec.value)
    line = f"- **{label}: {value}** (recommended) — {rec.rule}. _Source: {rec.source}._"
    if configured is not None and not _same(configured, rec.value):
        line += f" chief.toml uses **{configured}**."
    return line


def _data(plan: Plan) -> list[str]:
    d = plan.data
    return [
        "## Data",
        "",
        f"- Train: `{d.train_file}` ({d.format}, {d.examples:,} examples); validation: "
        f"`{d.val_file}` ({d.val_examples if d.val_examples is not None else 0:,} examples)",
        f"- Rendered sequences: {d.sequences_rendered:,}; total tokens {d.total_tokens:,}; "
        f"completion (trained) tokens **{d.completion_tokens:,}** for train_on_what = "
        f"`{d.train_on_what}`",
        f"- Length (tokens): min {d.lengths.min}, mean {d.lengths.mean}, p50 {d.lengths.p50}, "
        f"p90 {d.lengths.p90}, p99 {d.lengths.p99}, max {d.lengths.max}",
        f"- max_length {d.max_length}: {d.truncation_effect}",
        f"- Rule: {d.rule} (counted by the `{d.counting_method}` counter).",
        f"- Tokenizer: {_tokenizer_line(d.tokenizer)}",
        "",
    ]


def _tokenizer_line(t: TokenizerSummary) -> str:
    if not t.estimate:
        return f"{t.name}'s own ({t.source}); token figures are exact"
    flip = "could" if t.could_flip_rank else "does not"
    return (
        f"**proxy** {t.name}: every token figure is an estimate within +/-{t.error_bound:.0%} "
        f"({t.bound_rule}); the bound {flip} change the recommended rank"
    )


def _capacity(plan: Plan) -> list[str]:
    c = plan.capacity
    lines = [
        "## LoRA capacity",
        "",
        f"Per unit of rank: attention {c.per_rank['attn']:,}, MLP {c.per_rank['mlp']:,}"
        + (f" (MoE experts {c.per_rank['experts']:,})" if c.per_rank.get("experts") else "")
        + f", unembedding {c.per_rank['unembed']:,}. _Source: {c.source}._",
        "",
        "| rank | attention | MLP | unembed | total (placement) | params / completion tokens |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for row in c.table:
        shown = "—" if row.capacity_ratio is None else f"{row.capacity_ratio:.3g}"
        lines.append(
            f"| {row.rank} | {row.attn:,} | {row.mlp:,} | {row.unembed:,} | {row.total:,} "
            f"| {shown} |"
        )
    ratio = c.capacity_ratio_at_configured_rank
    lines += [
        "",
        _rec("Rank", c.recommended_rank, c.configured_rank),
        f"- Capacity ratio at the configured rank {c.configured_rank}: "
        f"{'n/a (no completion tokens)' if ratio is None else f'{ratio:.3g}'}"
        " (low regret while >= 1 for supervised runs)",
        "",
    ]
    return lines


def _training(plan: Plan) -> list[str]:
    lr, s = plan.learning_rate, plan.schedule
    lines = ["## Learning rate", ""]
    if lr.recommended is not None:
        lines.append(_rec("Learning rate", lr.recommended, lr.configured))
        lines.append(f"- Full fine-tune equivalent: {lr.full_finetune_equivalent:.3g}")
    else:
        lines.append(
            f"- Learning rate {lr.configured:g} from chief.toml (no formula applies; see warnings)"
        )
    lines += [f"- {note}" for note in lr.notes]
    p = plan.placement
    lines += [
        "",
        "## Placement",
        "",
        f"- {', '.join(k for k, v in p.value.items() if v)} — {p.rule}. _Source: {p.source}._",
        "",
        "## Batch size, steps and schedule",
        "",
        _rec("Batch size", s.batch_size, s.configured_batch_size),
        _rec("Epochs", s.epochs, s.configured_epochs),
        f"- Steps: {s.steps_per_epoch:,} per epoch, **{s.total_steps:,} total**; schedule "
        f"`{s.lr_schedule}`, warmup {s.warmup_steps} step(s)",
        _rec("Warmup", s.recommended_warmup, s.warmup_steps),
        "",
    ]
    return lines + _reward(plan)


def _reward(plan: Plan) -> list[str]:
    r = plan.reward
    if r is None:
        return []
    return [
        "## Reward",
        "",
        _rec("Grader", r.recommended, r.configured),
        f"- Alternative: {r.alternative}.",
        "- RL learns only where a group's rewards differ: `chief train` stops after "
        "`[rl] signal_check_steps` steps without any such group and says why "
        "(`chief plan --probe-rewards` checks the base model's rewards before training).",
        "",
    ]


def _estimates(plan: Plan) -> list[str]:
    e = plan.estimates
    cost = "unknown" if e.tinker_cost.dollars is None else f"${e.tinker_cost.dollars:,.2f}"
    seconds = e.local_time.seconds
    local = "unknown" if seconds is None else duration(seconds)
    lines = [
        "## Estimates",
        "",
        f"- Tinker cost: **{cost}** — {e.tinker_cost.detail}. _Source: {e.tinker_cost.source}._",
        f"- Local engine time: **{local}** — {e.local_time.detail}. Training speed from the "
        f"**{e.local_time.basis}**. _Source: {e.local_time.source}._",
    ]
    return lines + _eval_estimates(plan) + [""]


def _eval_estimates(plan: Plan) -> list[str]:
    e = plan.estimates
    if e.eval_sampling is None or e.eval_cost is None:
        return []
    ev, cost = e.eval_sampling, e.eval_cost
    dollars = "unknown" if cost.dollars is None else f"${cost.dollars:,.2f}"
    lines = [
        f"- Evaluating one model with the suite (Tinker): **{dollars}** — {cost.detail}. "
        f"_Source: {cost.source}._ Sampled tokens are an upper bound (every answer at max_tokens).",
        "",
        "| task | kind | samples | prefill tokens | sampled tokens (at most) | how |",
        "|---|---|---:|---:|---:|---|",
    ]
    for t in ev.tasks:
        lines.append(
            f"| {t.task} | {t.kind} | {'—' if t.samples is None else t.samples} | "
            f"{'—' if t.prefill_tokens is None else f'{t.prefill_tokens:,}'} | "
            f"{'—' if t.sample_tokens is None else f'{t.sample_tokens:,}'} | {t.method} |"
        )
    if ev.not_counted:
        lines += ["", "Not in the eval total: " + "; ".join(ev.not_counted) + "."]
    return lines


def _evals(plan: Plan) -> list[str]:
    ev = plan.eval_suite
    lines = ["## Eval suite", "", f"Suite `{ev.suite}`, version `{ev.version}`.", ""]
    lines += [f"- {purpose}" for purpose in ev.layers.values()]
    lines += ["", "| task | layer | kind | what | settings |", "|---|---|---|---|---|"]
    for t in ev.tasks:
        target = t.inspect_task or t.data or "(built-in suite)"
        settings = ", ".join(f"{k}={v}" for k, v in t.settings.items() if v is not None)
        what = f"{t.kind}: `{target}`"
        lines.append(f"| {t.name} | {t.layer} | {what} | {t.description} | {settings} |")
    lines += [
        "",
        "Benchmarks run with `MODEL_PATH=tinker://... scripts/run_inspect_evals.sh`; the whole "
        "suite with `chief eval`.",
        "",
    ]
    return lines


def render_plan_markdown(plan: Plan) -> str:
    lines = [
        f"# Plan for `{plan.project}`",
        "",
        f"Base model `{plan.base_model}` (renderer `{plan.renderer}`), recipe `{plan.recipe}`, "
        f"use case `{plan.use_case}`. Made {plan.created_at} by chief {plan.chief_version}.",
        "",
    ]
    if plan.warnings:
        lines += ["## Warnings", ""] + [f"- {w}" for w in plan.warnings] + [""]
    for section in (_data, _capacity, _training, _estimates, _evals):
        lines += section(plan)
    return "\n".join(lines).rstrip() + "\n"
