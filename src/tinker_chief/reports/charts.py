"""The report's figures, drawn with matplotlib (Agg) and returned as base64 PNG strings.

Learning curves (train loss, validation NLL and, for RL runs, the mean reward per run), eval
comparison bars with confidence intervals per task (one panel per metric, its better direction in
the title), the sweep's metric against learning rate and rank, and the calibration reliability
diagram. Each function returns `None` when there is nothing to draw,
so the HTML can say so instead of showing an empty axis.

Every label (run ids, model refs, task and metric names) is drawn as plain text: a name with
`$...$` in it is shown as typed, never parsed as mathtext or LaTeX (which could fail the report).
"""

from __future__ import annotations

import base64
import functools
import io
from collections.abc import Callable
from typing import TYPE_CHECKING, ParamSpec, TypeVar

import matplotlib

matplotlib.use("Agg")  # headless: reports are written by CI and over SSH

import matplotlib.pyplot as plt  # noqa: E402

from tinker_chief.registry import GateRules  # noqa: E402
from tinker_chief.reports.collect import (  # noqa: E402
    ReliabilityPoint,
    RunCurves,
    SweepData,
    SweepPointData,
    TaskResult,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from tinker_chief.registry import MetricValue

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _plain_text(draw: Callable[_P, _R]) -> Callable[_P, _R]:
    """Run a chart function with its labels as plain text (see the module docstring). A text
    reads these settings when it is made, so the figure is built and its PNG drawn under them."""

    @functools.wraps(draw)
    def plain(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with plt.rc_context({"text.parse_math": False, "text.usetex": False}):
            return draw(*args, **kwargs)

    return plain


def _png(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


@_plain_text
def learning_curves(runs: list[RunCurves]) -> str | None:
    """`learning_curves_figure` as a PNG."""
    figure = learning_curves_figure(runs)
    return None if figure is None else _png(figure)


@_plain_text
def learning_curves_figure(runs: list[RunCurves]) -> Figure | None:
    """Train loss and validation NLL per run; when any run logged rewards (RL), a third panel
    with each RL run's mean reward per step: an RL run's loss says little about its learning."""
    runs = [r for r in runs if r.train or r.val or r.reward]
    if not runs:
        return None
    rewarded = [r for r in runs if r.reward]
    fig, axes = plt.subplots(1, 3 if rewarded else 2, figsize=(15 if rewarded else 11, 3.8))
    train_ax, val_ax = axes[0], axes[1]
    for run in runs:
        if run.train:
            steps, values = zip(*run.train, strict=True)
            train_ax.plot(steps, values, label=run.run_id, linewidth=1.2)
        for key, points in sorted(run.val.items()):
            if key.endswith("/nll"):
                steps, values = zip(*points, strict=True)
                val_ax.plot(steps, values, marker="o", label=f"{run.run_id} {key}")
    train_ax.set(title="train loss", xlabel="step", ylabel="loss")
    val_ax.set(title="validation NLL", xlabel="step", ylabel="nats / token")
    if rewarded:
        reward_ax = axes[2]
        for run in rewarded:
            steps, values = zip(*run.reward, strict=True)
            reward_ax.plot(steps, values, label=run.run_id, linewidth=1.2)
        reward_ax.set(title="RL reward", xlabel="step", ylabel="mean reward (train/reward)")
    for ax in axes:
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    return fig


# (value, low end, high end of its confidence interval): one bar with its error bar
Bar = tuple[float, float | None, float | None]
# The metric a chart shows for a result (None: none)
MetricOf = Callable[[TaskResult], str | None]


def _value(metric: MetricValue) -> Bar:
    return float(metric.value), metric.ci_low, metric.ci_high


@_plain_text
def comparison_bars(
    results: list[TaskResult], metric_of: MetricOf, title: str, rules: GateRules | None = None
) -> str | None:
    """`comparison_figure` as a PNG."""
    figure = comparison_figure(results, metric_of, title, rules)
    return None if figure is None else _png(figure)


@_plain_text
def comparison_figure(
    results: list[TaskResult], metric_of: MetricOf, title: str, rules: GateRules | None = None
) -> Figure | None:
    """One small panel per metric (accuracy on 0-1 and an NLL in nats share no axis), titled
    with the metric and which direction is better (the gate's `rules`); in each, one group of
    bars per task, one bar per model, error bars from the CIs."""
    cells: dict[str, dict[tuple[str, str], Bar]] = {}
    for r in results:
        name = metric_of(r)
        if name and name in r.metrics:
            cells.setdefault(name, {})[(r.task, r.model_ref)] = _value(r.metrics[name])
    if not cells:
        return None
    models = sorted({r.model_ref for r in results})
    metrics = sorted(cells)
    tasks = {metric: sorted({task for task, _ in cells[metric]}) for metric in metrics}
    widths = [len(tasks[metric]) for metric in metrics]
    size = (max(6.0, sum(2.0 + 0.5 * w * len(models) for w in widths)), 3.8)
    fig, axes = plt.subplots(1, len(metrics), figsize=size, width_ratios=widths, squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        _bars(ax, cells[metric], tasks[metric], models)
        ax.set_title(f"{metric}\n{better_direction(metric, rules or GateRules())}", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(title)
    fig.legend(*axes[0][0].get_legend_handles_labels(), fontsize=7, loc="upper right")
    fig.tight_layout()
    return fig


def better_direction(metric: str, rules: GateRules) -> str:
    if rules.is_neutral(metric):
        return "no better direction"
    return "\u2191 higher is better" if rules.higher_is_better(metric) else "\u2193 lower is better"


def _bars(ax: Axes, cells: dict[tuple[str, str], Bar], tasks: list[str], models: list[str]) -> None:
    width = 0.8 / max(1, len(models))
    for i, model in enumerate(models):
        xs, ys, lows, highs = [], [], [], []
        for j, task in enumerate(tasks):
            if (task, model) in cells:
                value, low, high = cells[(task, model)]
                xs.append(j + (i - (len(models) - 1) / 2) * width)
                ys.append(value)
                lows.append(value - low if low is not None else 0.0)
                highs.append(high - value if high is not None else 0.0)
        ax.bar(xs, ys, width, yerr=[lows, highs], capsize=3, label=model, color=f"C{i}")
    ax.set_xticks(range(len(tasks)), tasks, fontsize=8)


@_plain_text
def reliability_diagram(tables: dict[str, list[ReliabilityPoint]]) -> str | None:
    """Accuracy vs confidence per filled bin, one line per model, with the diagonal of perfect
    calibration."""
    tables = {k: v for k, v in tables.items() if v}
    if not tables:
        return None
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    for model, table in sorted(tables.items()):
        confidence, accuracy = [b.confidence for b in table], [b.accuracy for b in table]
        ax.plot(confidence, accuracy, marker="o", label=model)
    ax.set(
        title="reliability diagram",
        xlabel="confidence",
        ylabel="accuracy",
        xlim=(0, 1),
        ylim=(0, 1),
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _png(fig)


def sweep_metric(sweep: SweepData) -> tuple[str, Callable[[SweepPointData], float | None]]:
    """What a sweep's charts show: the final reward (RL), else the final validation NLL, else the
    final train loss, as `chief sweep` ranks the points."""
    if any(p.final_reward is not None for p in sweep.points):
        return "final reward", lambda p: p.final_reward
    if any(p.final_val_nll is not None for p in sweep.points):
        return "final validation NLL", lambda p: p.final_val_nll
    return "final train loss", lambda p: p.final_loss


@_plain_text
def sweep_lr_curves(sweep: SweepData) -> str | None:
    """LoRA Without Regret's first plot for this project: the sweep's metric (`sweep_metric`)
    against learning rate, one line per rank, with the plan's and get_lr's LR marked."""
    metric, value_of = sweep_metric(sweep)
    by_rank: dict[int, list[tuple[float, float]]] = {}
    for p in sweep.points:
        value = value_of(p)
        if p.status == "finished" and value is not None:
            by_rank.setdefault(p.lora_rank, []).append((p.learning_rate, value))
    if not by_rank:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for rank, points in sorted(by_rank.items()):
        lrs, values = zip(*sorted(points), strict=True)
        ax.plot(lrs, values, marker="o", label=f"rank {rank}")
    for lr, label, style in ((sweep.planned_lr, "plan", "--"), (sweep.get_lr, "get_lr", ":")):
        if lr:
            ax.axvline(lr, color="gray", linestyle=style, linewidth=1, label=f"{label} {lr:.3g}")
    ax.set_xscale("log")
    # Minor labels overlap on a narrow grid.
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set(title=f"{metric} vs learning rate", xlabel="learning rate", ylabel=metric)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _png(fig)


@_plain_text
def sweep_rank_losses(sweep: SweepData) -> str | None:
    """LoRA Without Regret's second plot: final train loss (an RL sweep: final reward) against
    rank, one line per learning rate; None when the sweep tried a single rank."""
    rl = any(p.final_reward is not None for p in sweep.points)
    metric = "final reward" if rl else "final train loss"
    by_lr: dict[float, list[tuple[int, float]]] = {}
    for p in sweep.points:
        value = p.final_reward if rl else p.final_loss
        if p.status == "finished" and value is not None:
            by_lr.setdefault(p.learning_rate, []).append((p.lora_rank, value))
    if len({rank for points in by_lr.values() for rank, _ in points}) < 2:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for lr, points in sorted(by_lr.items()):
        ranks, values = zip(*sorted(points), strict=True)
        ax.plot(ranks, values, marker="o", label=f"LR {lr:.3g}")
    ax.set_xscale("log", base=2)
    tried = sorted({rank for points in by_lr.values() for rank, _ in points})
    ax.set_xticks(tried, [str(r) for r in tried])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set(title=f"{metric} vs LoRA rank", xlabel="rank", ylabel=metric)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _png(fig)
