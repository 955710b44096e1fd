"""`chief registry export`: the registry as `MODEL_REGISTRY.md` or one JSON document.

Deterministic: models by name then version, tasks and metrics sorted, no file paths or export
time, so regenerating an unchanged registry gives identical bytes (the golden test checks it).
The markdown is one table of all models (status and headline metrics) and then a section per
model: base and LoRA config, data summary, eval results, status history, `chief select`'s marks
(only when there are any; the table's status then reads "candidate, selected"), forced promotions.
Both exports are built from the same entries (`_entries`), so they can never disagree.

Every stored string (a model ref, a suite, task or metric name, a `--reason`, a path) reaches the
markdown through `_text` or `_code` and nothing else, so no stored text can add markup to the
rendered page: `_text` HTML-escapes `<`, `>` and `&`, backslash-escapes Markdown's inline syntax
(code spans, links and images, emphasis), writes `|` as `&#124;` (a table keeps its columns in
every GFM renderer) and turns line breaks into spaces (no stored text can start a new block);
`_code` makes a code span whose fence is longer than any backtick run in the text.
"""

from __future__ import annotations

import html
import re
import sqlite3
from dataclasses import dataclass
from typing import TypedDict

from tinker_chief.registry import _db
from tinker_chief.registry._governance import status_history
from tinker_chief.registry._records import (
    DataSummary,
    EvalRun,
    Export,
    ModelRecord,
    Selection,
    StatusChange,
    not_scored_in,
)
from tinker_chief.registry._rows import (
    audit_log,
    exports,
    latest_finished_all,
    list_models,
    selections,
)
from tinker_chief.registry._spend import Weights, all_weights, billed_summary, describe_billed
from tinker_chief.registry.rules import SuiteRequirement


class _ForcedPromotion(TypedDict):
    """A promotion forced past the gate, as its audit row tells it."""

    at: str
    actor: str
    to: object
    reason: object
    overridden_reasons: list[object]


@dataclass(frozen=True)
class _ModelEntry:
    """One model and everything the export says about it; `to_dict()` is its JSON entry."""

    model: ModelRecord
    results: dict[str, EvalRun]  # task -> latest finished run (on the agreed suite when given)
    missing_tasks: list[str] | None  # the agreed suite's tasks without results; None: no suite
    status_history: list[StatusChange]
    forced_promotions: list[_ForcedPromotion]
    selections: list[Selection]
    weights: Weights | None  # only versions whose weights have a lifecycle yet
    billed_run: dict[str, float] | None  # only runs whose bill `chief cost` has read
    exports: list[Export]

    def to_dict(self) -> dict[str, object]:
        entry = self.model.to_dict()
        entry["results"] = {task: run.to_dict() for task, run in self.results.items()}
        if self.missing_tasks is not None:
            entry["missing_tasks"] = self.missing_tasks
        entry["status_history"] = [change.to_dict() for change in self.status_history]
        entry["forced_promotions"] = self.forced_promotions
        entry["selections"] = [mark.to_dict() for mark in self.selections]
        if self.weights is not None:
            entry["weights"] = self.weights.to_dict()
        if self.billed_run is not None:
            entry["billed_run"] = self.billed_run
        entry["exports"] = [made.to_dict() for made in self.exports]
        return entry


def _forced_promotion(at: str, actor: str, details: dict[str, object]) -> _ForcedPromotion:
    reasons = details.get("overridden_reasons", [])
    return {
        "at": at,
        "actor": actor,
        "to": details.get("to"),
        "reason": details.get("reason"),
        "overridden_reasons": list(reasons) if isinstance(reasons, list) else [],
    }


def _entries(
    connection: sqlite3.Connection, suite: SuiteRequirement | None
) -> tuple[int, list[_ModelEntry]]:
    """The schema version and every model's entry, by name then version."""
    with _db.read(connection) as db:
        history: dict[str, list[StatusChange]] = {}
        for change in status_history(db, None):
            history.setdefault(change.model_ref, []).append(change)
        forced: dict[str | None, list[_ForcedPromotion]] = {}
        for e in audit_log(db):
            if e.command == "promote" and e.details.get("forced"):
                forced.setdefault(e.target, []).append(_forced_promotion(e.at, e.actor, e.details))
        selected: dict[str, list[Selection]] = {}
        for mark in selections(db):
            selected.setdefault(mark.model_ref, []).append(mark)
        exported: dict[str, list[Export]] = {}
        for made in exports(db):
            exported.setdefault(made.model_ref, []).append(made)
        entries = []
        all_results = latest_finished_all(db, suite.version if suite else None)
        weights = all_weights(db)
        for model in list_models(db):
            results = all_results.get(model.ref, {})
            run_id = model.training_run_id
            entries.append(
                _ModelEntry(
                    model=model,
                    results=results,
                    missing_tasks=(
                        [t for t in suite.task_names() if t not in results] if suite else None
                    ),
                    status_history=history.get(model.ref, []),
                    forced_promotions=forced.get(model.ref, []),
                    selections=selected.get(model.ref, []),
                    weights=weights.get(model.ref),
                    billed_run=billed_summary(db, f"run:{run_id}") if run_id else None,
                    exports=exported.get(model.ref, []),
                )
            )
    return _db.schema_version(db), entries


def export_json(
    connection: sqlite3.Connection, suite: SuiteRequirement | None
) -> dict[str, object]:
    schema_version, entries = _entries(connection, suite)
    return {
        "schema_version": schema_version,
        "suite": suite.model_dump() if suite else None,
        "headline_metrics": _headline_columns(entries, suite),
        "models": [entry.to_dict() for entry in entries],
    }


def _headline_columns(entries: list[_ModelEntry], suite: SuiteRequirement | None) -> list[str]:
    if suite:
        return [f"{t.name}/{t.headline_metric}" for t in suite.tasks]
    found = {
        f"{task}/{run.headline_metric}"
        for m in entries
        for task, run in m.results.items()
        if run.headline_metric
    }
    return sorted(found)


def export_markdown(connection: sqlite3.Connection, suite: SuiteRequirement | None) -> str:
    _schema_version, entries = _entries(connection, suite)
    lines = [
        "# Model registry",
        "",
        "Generated by `chief registry export` from the project's registry; do not edit by hand.",
        "",
    ]
    if suite:
        tasks = ", ".join(_text(t) for t in suite.task_names())
        agreed = f"{_code(suite.name)} version {_code(suite.version)} ({tasks})"
        lines += [f"Agreed eval suite: {agreed}.", ""]
    prod = [m.model.ref for m in entries if m.model.status == "prod"]
    lines += [f"Production model: **{_text(prod[0])}**." if prod else "No model is in production."]
    lines += [""]
    lines += _summary_table(entries, _headline_columns(entries, suite))
    for entry in entries:
        lines += _model_section(entry)
    return "\n".join(lines).rstrip() + "\n"


_LINE_BREAK = re.compile(r"\r\n|\r|\n")
# Markdown's inline syntax: `\` (it would escape what follows), code spans, links and images,
# emphasis and strikethrough. A `_` between two letters or digits opens no emphasis, so
# `Q4_1` and `warmup_steps` stay readable in the raw file.
_INLINE_SYNTAX = re.compile(r"[\\`*\[\]~]|(?<![^\W_])_|_(?![^\W_])")


def _text(value: object) -> str:
    """Stored text as Markdown that shows it and renders nothing of it (no HTML, no links, no
    emphasis, no table cell boundary, no new block); None as a dash, a float to 4 digits."""
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    # Markdown viewers pass raw HTML through, so `<img onerror=...>` in a name must arrive as text.
    text = html.escape(_LINE_BREAK.sub(" ", str(value)), quote=False)
    return _INLINE_SYNTAX.sub(lambda m: "\\" + m.group(), text).replace("|", "&#124;")


def _code(value: object) -> str:
    """Stored text as a code span. Its content is never rendered (HTML inside is literal), but a
    backtick would end it: the fence is one backtick longer than the longest run in the text.
    A `|` would end a table cell even inside a code span, so such text is shown by `_text`."""
    text = _LINE_BREAK.sub(" ", str(value))
    if "|" in text or not text.strip():
        return _text(text)
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    # A space on each side keeps a leading or trailing backtick from joining the fence;
    # CommonMark strips exactly one from each side again.
    pad = " " if text[0] in "` " or text[-1] in "` " else ""
    return f"{fence}{pad}{text}{pad}{fence}"


class _Markdown(str):
    """A table cell written as Markdown here (a code span, a CI of two numbers), not stored text:
    `_table` does not escape it again."""


def _table(header: list[str], rows: list[list[object]]) -> list[str]:
    out = ["| " + " | ".join(_text(h) for h in header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = (v if isinstance(v, _Markdown) else _text(v) for v in row)
        out.append("| " + " | ".join(cells) + " |")
    return out + [""]


def _summary_table(entries: list[_ModelEntry], columns: list[str]) -> list[str]:
    rows: list[list[object]] = []
    for m in entries:
        values = []
        for key in columns:
            task, metric = key.split("/", 1)
            run = m.results.get(task)
            value = run.metric(metric) if run else None
            values.append(value.value if value else None)
        model = m.model
        rows.append(
            [
                _Markdown(_code(model.ref)),
                model.status + _selected_note(m),
                model.base_model,
                model.recipe,
                model.created_at,
                *values,
            ]
        )
    return ["## All models", ""] + _table(
        ["model", "status", "base model", "recipe", "created", *columns], rows
    )


def _model_section(m: _ModelEntry) -> list[str]:
    model = m.model
    title = f"**{_text(model.display_name)}** — status **{_text(model.status)}**"
    lines = [f"## {_text(model.ref)}", "", title, ""]
    facts: list[tuple[str, object]] = [
        ("base model", model.base_model),
        ("backend", model.backend),
        ("tinker path", model.tinker_path),
        ("recipe", model.recipe),
        ("parent", model.parent_ref),
        ("training run", model.training_run_id),
        ("training step", model.training_step),
        ("config hash", model.config_hash),
        ("created", model.created_at),
    ]
    lines += [f"- {k}: {_text(v)}" for k, v in facts]
    if m.weights is not None:
        lines.append(f"- weights: {_text(m.weights.describe().removeprefix('weights '))}")
    if m.billed_run is not None:
        lines.append(f"- training run billed: {_text(describe_billed(m.billed_run))}")
    lines += [""]
    lora = model.lora
    lines += ["### LoRA and optimizer", ""]
    lines += [
        f"- LoRA: rank {_text(lora.rank)}, train_mlp={_text(lora.train_mlp)}, "
        f"train_attn={_text(lora.train_attn)}, train_unembed={_text(lora.train_unembed)}"
        if lora
        else "- LoRA: none (base model)"
        if model.recipe == "base"
        else "- LoRA: not recorded"
    ]
    optimizer = ", ".join(f"{_text(k)}={_text(v)}" for k, v in sorted(model.optimizer.items()))
    lines += ["- optimizer: " + (optimizer or "—"), ""]
    lines += _data_section(model.data)
    lines += _results_section(m)
    lines += ["### Status history", ""] + _table(
        ["at", "from", "to", "actor", "reason", "forced"],
        [
            [h.at, h.from_status, h.to_status, h.actor, h.reason, "yes" if h.forced else ""]
            for h in m.status_history
        ],
    )
    lines += _selections_section(m)
    lines += _exports_section(m)
    if m.forced_promotions:
        lines += ["### Forced promotions", ""]
        for f in m.forced_promotions:
            by = f"{_text(f['at'])} by {_text(f['actor'])} to {_text(f['to'])}"
            lines.append(f"- {by}: {_text(f['reason'])}")
            lines += [f"  - overridden: {_text(r)}" for r in f["overridden_reasons"]]
        lines.append("")
    return lines


def _selected_note(m: _ModelEntry) -> str:
    """ ", selected" when `chief select` chose this version as some scope's current candidate."""
    return ", selected" if any(s.current for s in m.selections) else ""


def _selections_section(m: _ModelEntry) -> list[str]:
    # Only when there are marks, so a registry without selections renders as it always did.
    if not m.selections:
        return []
    lines = ["### Selected by `chief select`", ""]
    for s in m.selections:
        later = "" if s.current else " (superseded by a later selection)"
        by = f"{_text(s.scope)} on {_text(s.at)} by {_text(s.actor)}{later}"
        lines.append(f"- {by}: {_text(s.reason)}")
    return lines + [""]


def _exports_section(m: _ModelEntry) -> list[str]:
    """`chief export` / `chief publish` rows, only when there are any (a registry without exports
    renders as it always did); a publication links its hub commit."""
    if not m.exports:
        return []
    rows: list[list[object]] = []
    for e in m.exports:
        where = e.location if e.target == "dir" else f"hub {e.location}"
        link = _commit_link(e.commit_sha, e.url)
        rows.append([e.at, e.format, where, link, _Markdown(f"{e.max_abs_diff:.2g}"), e.actor])
    header = ["at", "format", "where", "commit", "round-trip max abs diff", "actor"]
    return ["### Exports and publications", ""] + _table(header, rows)


def _commit_link(commit: str | None, url: str | None) -> str | None:
    """A hub commit as a link to its http(s) URL, percent-encoding what could leave the link's
    angle brackets; another scheme (a hostile hub's `javascript:`) is shown as text only."""
    if not commit or not url or not url.startswith(("https://", "http://")):
        return commit if not url else f"{commit} ({url})"
    target = re.sub(r"[\s<>]", lambda m: f"%{ord(m.group()):02X}", url)
    return _Markdown(f"[{_text(commit[:12])}](<{target}>)")


def _data_section(data: DataSummary) -> list[str]:
    lines = ["### Training data", ""]
    totals = (
        f"examples {_text(data.examples)}, tokens {_text(data.tokens)}, "
        f"completion tokens {_text(data.completion_tokens)}"
    )
    if not data.files:
        return lines + [f"- no data files recorded; {totals}", ""]
    files: list[list[object]] = [[f.path, f.sha256, f.examples] for f in data.files]
    return lines + _table(["file", "sha256", "examples"], files) + [f"Totals: {totals}.", ""]


def _benchmark_versions(task: str, settings: dict[str, object]) -> list[str]:
    """A published benchmark's task version and, per dataset split, revision and origin."""
    datasets = settings.get("dataset")
    if not datasets or not isinstance(datasets, list):
        return []
    data = "; ".join(
        f"{d.get('path')} {d.get('name') or d.get('data_dir') or 'default'}/{d.get('split')} "
        f"@ {str(d.get('revision'))[:12]} ({d.get('origin')}, {d.get('rows')} rows)"
        for d in datasets
        if isinstance(d, dict)
    )
    return [
        f"- {_code(task)}: {_text(settings.get('inspect_task'))} "
        f"version {_text(settings.get('task_version'))}; data {_text(data)}"
    ]


def _results_section(m: _ModelEntry) -> list[str]:
    lines = ["### Eval results", ""]
    for task in m.missing_tasks or []:
        command = _code(f"chief eval {m.model.ref} --task {task}")
        lines.append(f"- {_code(task)}: missing or stale on the agreed suite — run {command}")
    for task, run in m.results.items():
        lines += [
            f"- {_code(f'{task}/{name}')}: not scored — {_text(why)}"
            for name, why in sorted(not_scored_in(run.settings).items())
        ]
        lines += _benchmark_versions(task, run.settings)
    rows: list[list[object]] = []
    for task, run in m.results.items():
        for name, metric in run.metrics.items():
            low, high = metric.ci_low, metric.ci_high
            ci = None if low is None or high is None else _Markdown(f"[{low:.4g}, {high:.4g}]")
            row = [task, name, metric.value, ci, metric.n, run.suite_version, run.finished_at]
            rows.append(row)
    if rows:
        lines += [""] if lines[-1] != "" else []
        lines += _table(
            ["task", "metric", "value", "95% CI", "n", "suite version", "finished"], rows
        )
    elif len(lines) == 2:  # nothing missing, nothing not scored, nothing run
        lines += ["- no finished evals", ""]
    else:
        lines.append("")
    return lines
