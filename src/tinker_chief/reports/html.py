"""Rendering `ReportData` as one self-contained HTML file (inline CSS, base64 images).

Every user-provided string goes through `html.escape`. Sections: plan, learning curves, sweeps
(with `chief select`'s choice; only once `chief sweep` ran), eval comparison (linking each pair of
versions to its per-sample diff when the playground's export lies beside it), calibration, safety,
registry; the eval comparison lists, for published benchmarks, the task version and dataset
revision that ran, and the registry lists each version's run in an experiment tracker
(`--track`), linked when the tracker serves it over http(s). A section without data says so in
one sentence rather than disappearing, so a reader knows what was not measured.
"""

from __future__ import annotations

import html
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from tinker_chief.reports import charts
from tinker_chief.reports.collect import (
    ReportData,
    TaskResult,
    dataset_splits,
    is_calibration,
    is_safety,
    reliability_table,
)
from tinker_chief.tracking.contract import stored_links

if TYPE_CHECKING:
    from tinker_chief.registry import MetricValue

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{margin-bottom:0}.sub{color:#666;margin-top:.2em}
h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
td,th{border:1px solid #ddd;padding:.3em .6em;text-align:left}
th{background:#f4f4f4}img{max-width:100%;border:1px solid #eee}.none{color:#888;font-style:italic}
.prod{color:#0a0;font-weight:bold}.staging{color:#06c}.retired{color:#999}
"""


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value))


def _link(url: str, label: str) -> str:
    """An http(s) link (a hub's commit URL); any other scheme is shown as text, never followed."""
    if not url.startswith(("https://", "http://")):
        return _e(f"{label} ({url})")
    return f'<a href="{_e(url)}">{_e(label)}</a>'


def _table(headers: list[str], rows: Iterable[Iterable[object]], cls: str = "") -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _img(b64: str | None, alt: str, empty: str) -> str:
    if b64 is None:
        return f'<p class="none">{_e(empty)}</p>'
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{b64}">'


def _fmt(metric: MetricValue) -> str:
    text = f"{metric.value:.4g}"
    if metric.ci_low is not None and metric.ci_high is not None:
        text += f" [{metric.ci_low:.3g}, {metric.ci_high:.3g}]"
    if metric.n:
        text += f" (n={metric.n})"
    return _e(text)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _headline(result: TaskResult) -> str | None:
    if result.headline and result.headline in result.metrics:
        return result.headline
    return next(iter(result.metrics), None)


def _headline_value(result: TaskResult) -> str:
    name = _headline(result)
    return _fmt(result.metrics[name]) if name else ""


def _metric_table(results: list[TaskResult]) -> str:
    rows = []
    for r in results:
        for name, metric in sorted(r.metrics.items()):
            rows.append([_e(r.model_ref), _e(r.task), _e(name), _fmt(metric)])
    return _table(["model", "task", "metric", "value [95% CI]"], rows, "metrics")


def _plan_section(data: ReportData) -> str:
    out = _table(["setting", "value"], [[_e(k), _e(v)] for k, v in data.plan], "plan")
    if data.plan_rules:
        out += "<h3>Recommendations and the rules behind them</h3>"
        out += _table(
            ["setting", "value", "rule"],
            [[_e(a), _e(b), _e(c)] for a, b, c in data.plan_rules],
            "rules",
        )
    return out


def _eval_section(data: ReportData) -> str:
    general = [r for r in data.results if not is_safety(r.task) and not is_calibration(r.task)]
    if not general:
        return '<p class="none">No eval results recorded yet (run `chief eval`).</p>'
    bars = charts.comparison_bars(general, _headline, "eval comparison (headline metric, 95% CI)")
    summary = _table(
        ["model", "task", "headline", "value [95% CI]", "suite version"],
        [
            [_e(r.model_ref), _e(r.task), _e(_headline(r)), _headline_value(r), _e(r.suite_version)]
            for r in general
        ],
        "evals",
    )
    links = _diff_links(data)
    return _img(bars, "eval comparison", "") + summary + links + _benchmark_versions(general)


def _diff_links(data: ReportData) -> str:
    """Per task, each version against the first evaluated on it, opened in the playground's
    static export (the sample-by-sample diff under the same paired test)."""
    if data.diff_site is None:
        return ""
    by_task: dict[str, list[str]] = {}
    for result in data.results:
        by_task.setdefault(result.task, []).append(result.model_ref)
    items = []
    for task, refs in by_task.items():
        for ref in refs[1:]:
            query = urlencode({"task": task, "a": refs[0], "b": ref})
            href = f"{data.diff_site}/index.html#diff?{query}"
            items.append(
                f'<li><a href="{_e(href)}">{_e(task)}: {_e(ref)} against {_e(refs[0])}</a></li>'
            )
    if not items:
        return ""
    return (
        "<h3>Per-sample diffs</h3><p>Which samples each version fixed or broke, with both answers "
        "and the paired test (live, with chat: <code>chief playground</code>).</p>"
        f"<ul class='diffs'>{''.join(items)}</ul>"
    )


def _split_cell(split: Mapping[str, object]) -> str:
    config = split.get("name") or split.get("data_dir") or "default"
    rows = f", {split['rows']} rows" if split.get("rows") is not None else ""
    return _e(
        f"{split.get('path')} [{config}] {split.get('split')} "
        f"@ {split.get('revision') or 'unpinned'} ({split.get('origin')}{rows})"
    )


def _benchmark_versions(results: list[TaskResult]) -> str:
    """Which version of each published benchmark ran, on which dataset revision (doctrine
    layer 2)."""
    published = [r for r in results if dataset_splits(r)]
    if not published:
        return ""
    rows = [
        [
            _e(r.model_ref),
            _e(r.task),
            _e(r.settings.get("inspect_task")),
            _e(r.settings.get("task_version")),
            "<br>".join(_split_cell(split) for split in dataset_splits(r)),
        ]
        for r in published
    ]
    return "<h3>Published benchmarks: task and dataset versions</h3>" + _table(
        ["model", "task", "inspect task", "task version", "dataset @ revision"], rows, "benchmarks"
    )


def _calibration_section(data: ReportData) -> str:
    results = [r for r in data.results if is_calibration(r.task)]
    if not results:
        return '<p class="none">No calibration results recorded.</p>'
    tables = {r.model_ref: t for r in results if (t := reliability_table(r))}
    diagram = charts.reliability_diagram(tables)
    return _img(
        diagram, "reliability diagram", "Reliability bins were not found in the eval logs."
    ) + _metric_table(results)


def _safety_section(data: ReportData) -> str:
    results = [r for r in data.results if is_safety(r.task)]
    if not results:
        return '<p class="none">No safety results recorded.</p>'
    bars = charts.comparison_bars(results, _headline, "safety (headline metric, 95% CI)")
    return _img(bars, "safety comparison", "") + _metric_table(results)


def _registry_section(data: ReportData) -> str:
    if not data.models:
        return '<p class="none">The registry has no models yet.</p>'
    rows = [
        [
            _e(m.ref),
            f'<span class="{_e(m.status)}">{_e(m.status)}</span>',
            _e(m.base_model),
            _e(m.recipe),
            _e(m.training_run_id),
            _e(m.training_step),
            _e(m.config_hash),
            _e(m.tinker_path),
            _e(m.created_at),
        ]
        for m in data.models
    ]
    out = _table(
        ["model", "status", "base", "recipe", "run", "step", "config", "tinker path", "created"],
        rows,
        "registry",
    )
    out += _tracker_table(data)
    if data.costs:
        out += "<h3>Cost</h3>" + _table(
            [
                "model",
                "backend",
                "to make",
                "to evaluate (all its eval runs)",
                "its training run, billed",
            ],
            [
                [_e(m.ref), _e(m.backend), *(_e(text) for text in data.costs[m.ref])]
                for m in data.models
                if m.ref in data.costs
            ],
            "cost",
        )
    if data.exports:
        out += "<h3>Exports and publications</h3>" + _table(
            ["model", "when", "format", "where", "commit", "round-trip max abs diff"],
            [
                [
                    _e(e.model_ref),
                    _e(e.at),
                    _e(e.format),
                    _e(e.location if e.target == "dir" else f"hub {e.location}"),
                    _link(e.url, e.commit_sha[:12]) if e.url and e.commit_sha else _e(e.commit_sha),
                    _e(f"{e.max_abs_diff:.2g}"),
                ]
                for e in data.exports
            ],
            "exports",
        )
    if data.history:
        out += "<h3>Status history</h3>" + _table(
            ["model", "from", "to", "when", "by", "reason"],
            [
                [
                    _e(h.model_ref),
                    _e(h.from_status),
                    _e(h.to_status),
                    _e(h.at),
                    _e(h.actor),
                    _e(h.reason),
                ]
                for h in data.history
            ],
            "history",
        )
    return out


def _tracker_table(data: ReportData) -> str:
    """Each version's run in an experiment tracker (`--track`; registry config `trackers`),
    linked where the tracker has a web page for it."""
    rows = [
        [
            _e(m.ref),
            _e(link.backend),
            _e(link.name),
            _e(link.run_id),
            _link(link.web_url, link.web_url) if link.web_url else _e(link.place()),
        ]
        for m in data.models
        for link in stored_links(m.config).values()
    ]
    if not rows:
        return ""
    headers = ["model", "tracker", "run", "id", "where"]
    return "<h3>Experiment trackers</h3>" + _table(headers, rows, "trackers")


def _sweep_section(data: ReportData) -> str:
    out = []
    for sweep in data.sweeps:
        chosen = sweep.selected
        picked = (
            f"<p>chief select chose <b>{_e(chosen.model_ref)}</b>: {_e(chosen.reason)}</p>"
            if chosen
            else '<p class="none">No candidate selected yet (`chief select --sweep ID`).</p>'
        )
        rl = any(p.final_reward is not None for p in sweep.points)
        rows = [
            [
                _e(p.name),
                f"{p.learning_rate:.3g}",
                _e(p.lora_rank),
                _e(p.batch_size),
                _e(p.status),
                *([_number(p.final_reward)] if rl else []),
                _number(p.final_val_nll),
                _number(p.final_loss),
                _e(p.candidate),
            ]
            for p in sweep.points
        ]
        lr_alt = "final reward" if rl else "validation NLL"
        no_points = "No finished points to draw."
        headers = ["point", "LR", "rank", "batch", "status", *(["final reward"] if rl else [])]
        out.append(
            f"<h3>{_e(sweep.sweep_id)} ({_e(sweep.status)})</h3>"
            + "".join(f"<p>{_e(line)}</p>" for line in sweep.lines)
            + picked
            + _img(charts.sweep_lr_curves(sweep), f"{lr_alt} vs learning rate per rank", no_points)
            + _img(
                charts.sweep_rank_losses(sweep),
                "final reward vs rank" if rl else "final loss vs rank",
                "One rank in this sweep: no loss-vs-rank plot (`chief sweep --ranks 8,32`).",
            )
            + _table([*headers, "final val NLL", "final loss", "model"], rows, "sweep")
        )
    return "".join(out)


def render(data: ReportData) -> str:
    sections = [
        ("Plan", _plan_section(data)),
        (
            "Learning curves",
            _img(
                charts.learning_curves(data.runs),
                "learning curves",
                "No training runs yet (run `chief train`).",
            ),
        ),
        *(
            [("Sweeps", _sweep_section(data))] if data.sweeps else []
        ),  # only a project that swept has one
        ("Eval comparison", _eval_section(data)),
        ("Calibration", _calibration_section(data)),
        ("Safety", _safety_section(data)),
        ("Registry", _registry_section(data)),
    ]
    body = "".join(
        f'<section id="{_e(t.lower().replace(" ", "-"))}"><h2>{_e(t)}</h2>{c}</section>'
        for t, c in sections
    )
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{_e(data.project_name)} - chief report</title>"
        f"<style>{_CSS}</style></head><body><h1>{_e(data.project_name)}</h1>"
        f"<p class='sub'>tinker-chief report, {when}</p>{body}</body></html>"
    )
