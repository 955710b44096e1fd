"""Gathering what a report shows: the project's plan, its runs' metrics, and the registry.

Reads files only by their documented formats (`chief.toml`, `plan.json`, each run's
`metrics.jsonl` and `run.json` under `.chief/runs/`) and the registry through its public API,
so reports import no other capability. Everything is collected into plain dataclasses that
`reports.charts` and `reports.html` render.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinker_chief.errors import ConfigurationError

SAFETY_HINTS = ("safety", "refusal", "jailbreak", "harm")
CALIBRATION_HINTS = ("calibration", "ece", "brier")


@dataclass
class RunCurves:
    run_id: str
    status: str
    train: list[tuple[int, float]] = field(default_factory=list)  # (step, train/loss)
    val: dict[str, list[tuple[int, float]]] = field(default_factory=dict)  # metric -> (step, value)


@dataclass
class TaskResult:
    model_ref: str
    task: str
    suite_version: str
    headline: str | None
    metrics: dict[str, Any]  # name -> MetricValue
    log_location: str | None
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass
class ReportData:
    project_dir: Path
    project_name: str
    plan: list[tuple[str, str]]  # (setting, value)
    plan_rules: list[tuple[str, str, str]]  # (setting, value, rule) from plan.json when present
    runs: list[RunCurves]
    models: list[Any]  # registry ModelRecord
    results: list[TaskResult]
    history: list[Any]  # registry StatusChange
    registry_path: Path | None


def _plan_summary(config: dict[str, Any]) -> list[tuple[str, str]]:
    rows = [("project", config.get("name")), ("base model", config.get("base_model")),
            ("task", config.get("task")), ("use case", config.get("use_case"))]
    for section, keys in (("data", ("train", "val", "max_length")), ("lora", ("rank", "train_mlp", "train_attn",
                          "train_unembed")), ("optimizer", ("learning_rate",)),
                          ("schedule", ("batch_size", "epochs", "steps", "lr_schedule"))):
        table = config.get(section, {})
        rows += [(f"{section}.{key}", table.get(key)) for key in keys if key in table]
    suite = config.get("eval_suite", {})
    if suite:
        rows.append(("eval suite", f"{suite.get('name')}: " + ", ".join(t.get("name", "?") for t in suite.get("tasks", []))))
    return [(k, str(v)) for k, v in rows if v is not None]


def _plan_rules(project_dir: Path) -> list[tuple[str, str, str]]:
    """`plan.json` recommendations, read defensively: any list of {setting|name, value, rule|why}."""
    path = project_dir / "plan.json"
    if not path.exists():
        return []
    try:
        plan = json.loads(path.read_text())
    except json.JSONDecodeError:
        return []
    items = plan.get("recommendations", []) if isinstance(plan, dict) else []
    rows = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict):
            name = item.get("setting") or item.get("name") or item.get("field")
            rule = item.get("rule") or item.get("why") or item.get("reason") or ""
            if name:
                rows.append((str(name), str(item.get("value", "")), str(rule)))
    return rows


def _runs(project_dir: Path) -> list[RunCurves]:
    runs_dir = project_dir / ".chief" / "runs"
    out = []
    for run_dir in sorted(runs_dir.iterdir()) if runs_dir.is_dir() else []:
        status = json.loads((run_dir / "run.json").read_text()).get("status", "?") if (run_dir / "run.json").exists() else "?"
        curves = RunCurves(run_dir.name, status)
        metrics = run_dir / "metrics.jsonl"
        for raw in metrics.read_text().splitlines() if metrics.exists() else []:
            try:
                row = json.loads(raw)
            except json.JSONDecodeError:
                continue
            step = int(row.get("step", 0))
            if "train/loss" in row:
                curves.train.append((step, float(row["train/loss"])))
            for key, value in row.items():
                if key.startswith("val/") and key.endswith(("/nll", "/accuracy")) and isinstance(value, (int, float)):
                    curves.val.setdefault(key, []).append((step, float(value)))
        out.append(curves)
    return out


def collect(project_dir: Path) -> ReportData:
    project_dir = Path(project_dir)
    config_path = project_dir / "chief.toml"
    if not config_path.exists():
        raise ConfigurationError(f"{config_path}: not found; run `chief init` first or pass --project DIR")
    config = tomllib.loads(config_path.read_text())
    registry_path = project_dir / config.get("registry", ".chief/registry.db")
    models, results, history = [], [], []
    if registry_path.exists():
        from tinker_chief.registry import Registry

        with Registry.open(registry_path, create=False) as registry:
            models = registry.list_models()
            history = registry.status_history()
            for model in models:
                for task, run in sorted(registry.latest_results(model.ref).items()):
                    results.append(TaskResult(model.ref, task, run.suite_version, run.headline_metric,
                                              dict(run.metrics), run.log_location, dict(run.settings or {})))
    return ReportData(project_dir, str(config.get("name", project_dir.name)), _plan_summary(config),
                      _plan_rules(project_dir), _runs(project_dir), models, results, history,
                      registry_path if registry_path.exists() else None)


def is_safety(task: str) -> bool:
    return any(h in task.lower() for h in SAFETY_HINTS)


def is_calibration(task: str) -> bool:
    return any(h in task.lower() for h in CALIBRATION_HINTS)


def reliability_table(result: TaskResult) -> list[dict[str, Any]] | None:
    """The calibration run's reliability bins: recorded in the run's settings by `chief eval`,
    else found in its log (a JSON object with `reliability`)."""
    recorded = _find_reliability(result.settings)
    if recorded:
        return recorded
    if not result.log_location:
        return None
    path = Path(result.log_location)
    candidates = [path] if path.is_file() else sorted(path.glob("*.json")) if path.is_dir() else []
    for candidate in candidates:
        try:
            value = json.loads(candidate.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        table = _find_reliability(value)
        if table:
            return table
    return None


def _find_reliability(value: Any) -> list[dict[str, Any]] | None:
    if isinstance(value, dict):
        if isinstance(value.get("reliability"), list):
            return value["reliability"]
        for inner in value.values():
            found = _find_reliability(inner)
            if found:
                return found
    return None
