"""Gathering what a report shows: the project's plan, its runs' metrics, and the registry.

Reads files only by their documented formats (`chief.toml`, `plan.json`, each sweep's
`sweep.json`) and the registry through its public API; each run's `metrics.jsonl` and `run.json`
under `.chief/runs/` through the shared run-file reader (`tinker_chief.runfiles`, the one
training reads them with), so reports import no other capability. A broken `chief.toml`,
`plan.json` or `run.json` is a one-line error naming the file (through `tinker_chief.files`);
a torn `metrics.jsonl` line is skipped, as training itself does. Everything is collected into
plain dataclasses that `reports.charts` and `reports.html` render.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeGuard

from tinker_chief.errors import ChiefError, ConfigurationError
from tinker_chief.files import read_json, read_toml
from tinker_chief.paths import REGISTRY, SWEEP_STATE, ProjectPaths, registry_file
from tinker_chief.runfiles import RunFiles

if TYPE_CHECKING:
    from tinker_chief.registry import (
        Export,
        MetricValue,
        ModelRecord,
        Registry,
        Selection,
        StatusChange,
    )

SAFETY_HINTS = ("safety", "refusal", "jailbreak", "harm")
CALIBRATION_HINTS = ("calibration", "ece", "brier")


@dataclass
class RunCurves:
    run_id: str
    status: str
    train: list[tuple[int, float]] = field(default_factory=list)  # (step, train/loss)
    val: dict[str, list[tuple[int, float]]] = field(default_factory=dict)  # metric -> (step, value)
    reward: list[tuple[int, float]] = field(default_factory=list)  # (step, train/reward): RL runs


@dataclass
class TaskResult:
    model_ref: str
    task: str
    suite_version: str
    headline: str | None
    metrics: dict[str, MetricValue]  # by name
    log_location: str | None
    settings: dict[str, object] = field(default_factory=dict)


@dataclass
class SweepPointData:
    name: str
    learning_rate: float
    lora_rank: int
    batch_size: int
    status: str
    final_val_nll: float | None
    final_loss: float | None
    candidate: str | None
    final_reward: float | None = None  # RL: mean train/reward of the last steps


@dataclass
class SweepData:
    """One `.chief/sweeps/<id>/sweep.json` (written by `chief sweep`) and its registry selection."""

    sweep_id: str
    status: str
    planned_lr: float | None
    get_lr: float | None
    points: list[SweepPointData]
    lines: list[str]  # the sweep's own summary: best LR per rank vs the plan's and get_lr's
    selected: Selection | None = None  # the latest of scope "sweep:<id>"


@dataclass
class ReportData:
    project_dir: Path
    project_name: str
    plan: list[tuple[str, str]]  # (setting, value)
    plan_rules: list[tuple[str, str, str]]  # (setting, value, rule) from plan.json when present
    runs: list[RunCurves]
    models: list[ModelRecord]
    results: list[TaskResult]
    history: list[StatusChange]
    registry_path: Path | None
    sweeps: list[SweepData] = field(default_factory=list)
    selections: list[Selection] = field(default_factory=list)  # oldest first
    # model ref -> (to make, to evaluate, what its training run was billed)
    costs: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    diff_site: str | None = None  # the playground's static export, relative to the report
    exports: list[Export] = field(default_factory=list)  # `chief export` / `chief publish`


@dataclass(frozen=True)
class ReliabilityPoint:
    """One filled bin of a calibration run's reliability table."""

    confidence: float  # the mean confidence of its questions
    accuracy: float
    count: int


def _plan_summary(config: Mapping[str, object]) -> list[tuple[str, str]]:
    rows = [
        ("project", config.get("name")),
        ("base model", config.get("base_model")),
        ("recipe", config.get("recipe", config.get("task"))),  # `task`: its old name
        ("use case", config.get("use_case")),
    ]
    for section, keys in (
        ("data", ("train", "val", "max_length")),
        ("lora", ("rank", "train_mlp", "train_attn", "train_unembed")),
        ("optimizer", ("learning_rate",)),
        ("schedule", ("batch_size", "epochs", "steps", "lr_schedule")),
    ):
        table = config.get(section, {})
        rows += [
            (f"{section}.{key}", table.get(key))
            for key in keys
            if isinstance(table, dict) and key in table
        ]
    suite = config.get("eval_suite", {})
    if isinstance(suite, dict) and suite:
        tasks = suite.get("tasks", [])
        names = (
            [str(t.get("name", "?")) for t in tasks if isinstance(t, dict)]
            if isinstance(tasks, list)
            else []
        )
        rows.append(("eval suite", f"{suite.get('name')}: " + ", ".join(names)))
    return [(k, str(v)) for k, v in rows if v is not None]


def _plan_rules(project_dir: Path) -> list[tuple[str, str, str]]:
    """`plan.json` recommendations, read defensively: any list of {setting|name, value,
    rule|why}."""
    path = ProjectPaths(project_dir).plan_json
    if not path.exists():
        return []
    plan = read_json(path)
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
    runs_dir = ProjectPaths(project_dir).runs
    out = []
    for run_dir in sorted(runs_dir.iterdir()) if runs_dir.is_dir() else []:
        run = RunFiles(run_dir)
        curves = RunCurves(run_dir.name, str(run.status().get("status", "?")))
        for row in run.metrics():
            step = row.get("step", 0)
            if not _is_number(step):
                continue
            if _is_number(row.get("train/loss")):
                curves.train.append((int(step), float(row["train/loss"])))
            if _is_number(row.get("train/reward")):
                curves.reward.append((int(step), float(row["train/reward"])))
            for key, value in row.items():
                if (
                    key.startswith("val/")
                    and key.endswith(("/nll", "/accuracy"))
                    and _is_number(value)
                ):
                    curves.val.setdefault(key, []).append((int(step), float(value)))
        out.append(curves)
    return out


def _number_or_none(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _sweep(path: Path) -> SweepData | None:
    """A sweep.json read by its documented format; one that is not a dict of points is skipped."""
    raw = read_json(path)
    if not isinstance(raw, dict) or not isinstance(raw.get("points"), list):
        return None
    planned, summary = raw.get("planned"), raw.get("summary")
    planned, summary = (
        (planned if isinstance(planned, dict) else {}),
        (summary if isinstance(summary, dict) else {}),
    )
    points = [
        SweepPointData(
            str(p.get("name")),
            float(p["learning_rate"]),
            int(p.get("lora_rank", 0)),
            int(p.get("batch_size", 0)),
            str(p.get("status", "?")),
            _number_or_none(p.get("final_val_nll")),
            _number_or_none(p.get("final_loss")),
            p.get("candidate") if isinstance(p.get("candidate"), str) else None,
            _number_or_none(p.get("final_reward")),
        )
        for p in raw["points"]
        if isinstance(p, dict) and _is_number(p.get("learning_rate"))
    ]
    lines = [str(line) for line in summary.get("lines", []) if isinstance(line, str)]
    return SweepData(
        str(raw.get("sweep_id", path.parent.name)),
        str(raw.get("status", "?")),
        _number_or_none(planned.get("learning_rate")),
        _number_or_none(planned.get("get_lr")),
        points,
        lines,
    )


def _sweeps(project_dir: Path, selections: list[Selection]) -> list[SweepData]:
    root = ProjectPaths(project_dir).sweeps
    out = []
    for path in sorted(root.glob(f"*/{SWEEP_STATE}")) if root.is_dir() else []:
        sweep = _sweep(path)
        if sweep is not None:
            marks = [s for s in selections if s.scope == f"sweep:{sweep.sweep_id}"]
            sweep.selected = marks[-1] if marks else None
            out.append(sweep)
    return out


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def collect(project_dir: Path) -> ReportData:
    project_dir = Path(project_dir)
    config_path = project_dir / "chief.toml"
    if not config_path.exists():
        raise ConfigurationError(
            f"{config_path}: not found; run `chief init` first or pass --project DIR"
        )
    config = read_toml(config_path)
    registry_path = registry_file(project_dir, str(config.get("registry", REGISTRY)))
    models, results, history, selections, exports = [], [], [], [], []
    costs: dict[str, tuple[str, str, str]] = {}
    if registry_path.exists():
        from tinker_chief.registry import Registry

        with Registry.open(registry_path, create=False, read_only=True) as registry:
            models = registry.list_models()
            history = registry.status_history()
            selections = registry.selections()
            exports = registry.exports()
            costs = _costs(registry, models, _plan_prices(project_dir))
            for model in models:
                for task, run in sorted(registry.latest_results(model.ref).items()):
                    results.append(
                        TaskResult(
                            model.ref,
                            task,
                            run.suite_version,
                            run.headline_metric,
                            dict(run.metrics),
                            run.log_location,
                            dict(run.settings or {}),
                        )
                    )
    return ReportData(
        project_dir,
        str(config.get("name", project_dir.name)),
        _plan_summary(config),
        _plan_rules(project_dir),
        _runs(project_dir),
        models,
        results,
        history,
        registry_path if registry_path.exists() else None,
        _sweeps(project_dir, selections),
        selections,
        costs,
        exports=exports,
    )


def _plan_prices(project_dir: Path) -> tuple[str, Mapping[str, object]] | None:
    """(base model, its $/M prices) from plan.json's `estimates.prices`, when the plan has them."""
    path = ProjectPaths(project_dir).plan_json
    plan = read_json(path) if path.exists() else None
    estimates = plan.get("estimates") if isinstance(plan, dict) else None
    prices = estimates.get("prices") if isinstance(estimates, dict) else None
    return (
        (str(plan["base_model"]), prices)
        if isinstance(prices, dict) and isinstance(plan, dict)
        else None
    )


def _costs(
    registry: Registry,
    models: list[ModelRecord],
    prices: tuple[str, Mapping[str, object]] | None,
) -> dict[str, tuple[str, str, str]]:
    """Per model: what making it and all its eval runs cost, priced (cloud) at plan.json's rates
    when the version's base model is the plan's."""
    from tinker_chief.registry import Usage, describe_billed

    out = {}
    for model in models:
        price = prices[1] if prices and prices[0] == model.base_model else None
        no_price = "no price for it in plan.json (run `chief plan`)"
        runs = registry.eval_runs(model.ref)
        evaluated = (
            Usage.total([r.usage for r in runs]).describe(model.backend, price, no_price)
            if runs
            else "not evaluated yet"
        )
        billed = (
            describe_billed(registry.billed_for(f"run:{model.training_run_id}"))
            if model.training_run_id
            else "—"
        )
        out[model.ref] = (model.usage.describe(model.backend, price, no_price), evaluated, billed)
    return out


def dataset_splits(result: TaskResult) -> list[dict[str, object]]:
    """The dataset splits a published benchmark run read (path, config, split, revision, origin,
    rows), as `chief eval` records them in the run's settings; empty for any other run."""
    splits = result.settings.get("dataset")
    return [s for s in splits if isinstance(s, dict)] if isinstance(splits, list) else []


def is_safety(task: str) -> bool:
    return any(h in task.lower() for h in SAFETY_HINTS)


def is_calibration(task: str) -> bool:
    return any(h in task.lower() for h in CALIBRATION_HINTS)


def reliability_table(result: TaskResult) -> list[ReliabilityPoint] | None:
    """The calibration run's filled reliability bins: recorded in the run's settings by `chief
    eval`, else found in its log (a JSON object with `reliability`)."""
    recorded = _find_reliability(result.settings)
    if recorded:
        return _filled_bins(recorded)
    if not result.log_location:
        return None
    path = Path(result.log_location)
    candidates = [path] if path.is_file() else sorted(path.glob("*.json")) if path.is_dir() else []
    for candidate in candidates:
        try:
            value = read_json(candidate)
        except ChiefError:
            continue
        table = _find_reliability(value)
        if table:
            return _filled_bins(table)
    return None


def _filled_bins(table: list[object]) -> list[ReliabilityPoint]:
    """The bins with questions in them (a bin without has no confidence or accuracy)."""
    bins = []
    for row in table:
        if not isinstance(row, dict):
            continue
        count, confidence, accuracy = row.get("count"), row.get("confidence"), row.get("accuracy")
        if isinstance(count, int) and count > 0 and _is_number(confidence) and _is_number(accuracy):
            bins.append(ReliabilityPoint(float(confidence), float(accuracy), count))
    return bins


def _find_reliability(value: object) -> list[object] | None:
    if isinstance(value, dict):
        table = value.get("reliability")
        if isinstance(table, list):
            return table
        for inner in value.values():
            found = _find_reliability(inner)
            if found:
                return found
    return None
