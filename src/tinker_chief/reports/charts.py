"""The report's figures, drawn with matplotlib (Agg) and returned as base64 PNG strings.

Learning curves (train loss, validation NLL per run), eval comparison bars with confidence
intervals per task, and the calibration reliability diagram. Each function returns `None`
when there is nothing to draw, so the HTML can say so instead of showing an empty axis.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: reports are written by CI and over SSH

import matplotlib.pyplot as plt  # noqa: E402

from tinker_chief.reports.collect import RunCurves, TaskResult  # noqa: E402


def _png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def learning_curves(runs: list[RunCurves]) -> str | None:
    runs = [r for r in runs if r.train or r.val]
    if not runs:
        return None
    fig, (train_ax, val_ax) = plt.subplots(1, 2, figsize=(11, 3.8))
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
    for ax in (train_ax, val_ax):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    return _png(fig)


def _value(metric: Any) -> tuple[float, float | None, float | None]:
    return float(metric.value), getattr(metric, "ci_low", None), getattr(metric, "ci_high", None)


def comparison_bars(results: list[TaskResult], metric_of: Any, title: str) -> str | None:
    """Grouped bars: one group per task, one bar per model, error bars from the CIs."""
    tasks = sorted({r.task for r in results})
    models = sorted({r.model_ref for r in results})
    cells = {}
    for r in results:
        name = metric_of(r)
        if name and name in r.metrics:
            cells[(r.task, r.model_ref)] = _value(r.metrics[name])
    tasks = [t for t in tasks if any((t, m) in cells for m in models)]
    if not tasks:
        return None
    width = 0.8 / max(1, len(models))
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(tasks) * max(1, len(models)) / 2 + 3), 3.8))
    for i, model in enumerate(models):
        xs, ys, lows, highs = [], [], [], []
        for j, task in enumerate(tasks):
            if (task, model) in cells:
                value, low, high = cells[(task, model)]
                xs.append(j + (i - (len(models) - 1) / 2) * width)
                ys.append(value)
                lows.append(value - low if low is not None else 0.0)
                highs.append(high - value if high is not None else 0.0)
        ax.bar(xs, ys, width, yerr=[lows, highs], capsize=3, label=model)
    ax.set_xticks(range(len(tasks)), [f"{t}\n({metric_of(next(r for r in results if r.task == t)) or ''})"
                                       for t in tasks], fontsize=8)
    ax.set(title=title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7)
    return _png(fig)


def reliability_diagram(tables: dict[str, list[dict[str, Any]]]) -> str | None:
    """Accuracy vs confidence per bin, one line per model, with the diagonal of perfect calibration."""
    tables = {k: v for k, v in tables.items() if any(b.get("count") for b in v)}
    if not tables:
        return None
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    for model, table in sorted(tables.items()):
        filled = [b for b in table if b.get("count")]
        ax.plot([b["confidence"] for b in filled], [b["accuracy"] for b in filled], marker="o", label=model)
    ax.set(title="reliability diagram", xlabel="confidence", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _png(fig)
