"""What chief logs to a tracker, the same for every backend, built from chief's own records.

- a run's plan (`run_params`): every hyperparameter the run used (spec.json, flattened), each
  recommendation of plan.json with the rule and source that chose it, base model, LoRA config,
  data files (path, sha256, lines), config and data hashes, chief / tinker / cookbook versions;
- a run's cost (`run_cost`): tokens trained, prefilled and sampled, machine seconds, and
  dollars at the price table's rates when the run was on Tinker's cloud and the price is known;
- a model version's evals (`eval_metrics`, `eval_table`, `eval_tags`): each suite task's
  metrics with n and CI, the suite version, benchmark task versions and dataset revisions;
- a sweep (`sweep_params`, `sweep_table`): the grid and each point's final numbers.
"""

from __future__ import annotations

import importlib.metadata
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from tinker_chief.errors import ChiefError
from tinker_chief.files import read_json, sha256_file
from tinker_chief.paths import ProjectPaths
from tinker_chief.runfiles import RunFiles
from tinker_chief.tracking.contract import Cell
from tinker_chief.training.spec import TrainSpec

if TYPE_CHECKING:
    from tinker_chief.registry import EvalRun

PARAM_LENGTH = 500  # long values (rules, prompts) are cut: a param is a label, plan.md is the text
EVAL_COLUMNS = ("suite", "suite_version", "task", "metric", "value", "ci_low", "ci_high", "n")
RECIPE_SECTIONS = {"rl", "dpo", "distill"}  # spec.json sections only their own recipe uses


def flatten(value: object, prefix: str = "") -> dict[str, str]:
    """Nested JSON as dotted keys with string values (what every tracker's params take)."""
    if isinstance(value, Mapping):
        out: dict[str, str] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if value is None:
        return {}
    text = value if isinstance(value, str) else json.dumps(value)
    return {prefix: text[:PARAM_LENGTH]}


def plan_rules(plan: object, path: str = "") -> dict[str, str]:
    """plan.json's recommendations (`{"value", "rule", "source"}` anywhere in it) as
    `plan.<where>` (the value) and `rule.<where>` (why, and the source of the rule)."""
    out: dict[str, str] = {}
    if isinstance(plan, Mapping):
        if "value" in plan and "rule" in plan:
            out.update(flatten(plan["value"], f"plan.{path}"))
            why = f"{plan['rule']} ({plan.get('source', 'no source')})"
            out[f"rule.{path}"] = why[:PARAM_LENGTH]
        for key, item in plan.items():
            if key != "value":
                out.update(plan_rules(item, f"{path}.{key}" if path else str(key)))
    return out


def versions() -> dict[str, str]:
    from tinker_chief import __version__

    out = {"version.chief": __version__}
    for dist in ("tinker", "tinker-cookbook"):
        try:
            out[f"version.{dist}"] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[f"version.{dist}"] = "not installed"
    return out


def _lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for line in handle if line.strip())


def data_summary(spec: TrainSpec, project_root: Path) -> dict[str, str]:
    out = {}
    for path in spec.data_paths(project_root):
        if path.exists():
            inside = path.is_relative_to(project_root)
            name = path.relative_to(project_root).as_posix() if inside else str(path)
            out[f"data.file.{name}"] = f"sha256 {sha256_file(path)[:16]}, {_lines(path)} lines"
    return out


def _plan(project_root: Path) -> object:
    """plan.json, or None: an unreadable plan is `chief plan`'s to report, not the tracker's."""
    path = ProjectPaths(project_root).plan_json
    try:
        return read_json(path) if path.exists() else None
    except ChiefError:
        return None


def run_params(run_dir: Path, project_root: Path) -> dict[str, str]:
    """Everything a run was made of (see the module docstring), as tracker params."""
    files = RunFiles(run_dir)
    spec_json, status = files.spec(), files.status()
    spec = TrainSpec.model_validate(spec_json)
    # The recipe's own section only: an SFT run's [rl] defaults are not its hyperparameters.
    unused = RECIPE_SECTIONS - {spec.recipe}
    params = flatten({k: v for k, v in spec_json.items() if k not in unused})
    params.update(
        {
            "chief.run_id": files.run_id,
            "config_hash": spec.config_hash(),
            "data_hash": str(status.get("data_hash", "")),
            "backend": str(status.get("backend", "")),
            **versions(),
            **data_summary(spec, project_root),
            **plan_rules(_plan(project_root)),
        }
    )
    return {key: value for key, value in params.items() if value != ""}


def run_cost(run_dir: Path) -> dict[str, float]:
    """What the run spent so far: `cost/<usage key>` sums and `cost/usd` when it is known."""
    from tinker_chief.planning.estimates import TokenWork, tinker_cost

    files = RunFiles(run_dir)
    spent = files.usage(sys.maxsize)
    out = {f"cost/{key.replace('/', '_')}": value for key, value in spent.items()}
    if files.status().get("backend") == "tinker":
        work = TokenWork(
            train_tokens=int(spent["train/tokens"]),
            sample_tokens=int(spent["sample/tokens"]),
            prefill_tokens=int(spent["prefill/tokens"]),
        )
        dollars = tinker_cost(str(files.spec().get("base_model", "")), work).dollars
        if dollars is not None:
            out["cost/usd"] = dollars
    return out


# ------------------------------------------------------------------------------------ evals


def eval_metrics(runs: Iterable[EvalRun]) -> dict[str, float]:
    """`eval/<task>/<metric>` and its `/ci_low`, `/ci_high`, `/n`, of registry `EvalRun`s."""
    out: dict[str, float] = {}
    for run in runs:
        for name, metric in run.metrics.items():
            key = f"eval/{run.task}/{name}"
            out[key] = metric.value
            for part, value in (("ci_low", metric.ci_low), ("ci_high", metric.ci_high)):
                if value is not None:
                    out[f"{key}/{part}"] = float(value)
            if metric.n is not None:
                out[f"{key}/n"] = float(metric.n)
    return out


def eval_table(runs: Iterable[EvalRun]) -> list[list[Cell]]:
    """One row per (task, metric), columns `EVAL_COLUMNS`."""
    return [
        [run.suite_name, run.suite_version, run.task, name, m.value, m.ci_low, m.ci_high, m.n]
        for run in runs
        for name, m in run.metrics.items()
    ]


def _dataset_revisions(datasets: object) -> str | None:
    if not isinstance(datasets, list):
        return None
    named = [d for d in datasets if isinstance(d, Mapping)]
    text = ", ".join(f"{d.get('path', d.get('name', '?'))}@{d.get('revision', '?')}" for d in named)
    return text[:PARAM_LENGTH]


def eval_tags(runs: Iterable[EvalRun]) -> dict[str, str]:
    """Suite name and version, and per benchmark task its version and dataset revisions."""
    tags: dict[str, str] = {}
    for run in runs:
        tags["eval.suite"], tags["eval.suite_version"] = run.suite_name, run.suite_version
        settings = run.settings or {}
        if settings.get("task_version") is not None:
            tags[f"eval.{run.task}.task_version"] = str(settings["task_version"])
        revisions = _dataset_revisions(settings.get("dataset"))
        if revisions is not None:
            tags[f"eval.{run.task}.datasets"] = revisions
    return tags


# ------------------------------------------------------------------------------------ sweeps


class SweepPointState(Protocol):
    """What is logged of one sweep point (`workflows.sweeping.SweepPoint`)."""

    name: str
    lr_multiplier: float
    learning_rate: float
    lora_rank: int
    batch_size: int
    run_id: str | None
    status: str
    final_val_nll: float | None
    final_loss: float | None
    final_reward: float | None


class SweepState(Protocol):
    """What is logged of a sweep (`workflows.sweeping.Sweep`), which sits above this package."""

    sweep_id: str
    dir: Path
    config_hash: str
    planned_lr: float
    planned_rank: int
    planned_batch_size: int
    get_lr: float | None
    status: str

    @property
    def points(self) -> Sequence[SweepPointState]: ...


SWEEP_COLUMNS = (
    "point",
    "lr_multiplier",
    "learning_rate",
    "lora_rank",
    "batch_size",
    "run",
    "status",
    "final_val_nll",
    "final_loss",
    "final_reward",
)


def sweep_params(sweep: SweepState) -> dict[str, str]:
    planned = {
        "learning_rate": sweep.planned_lr,
        "lora_rank": sweep.planned_rank,
        "batch_size": sweep.planned_batch_size,
        "get_lr": sweep.get_lr,
    }
    return flatten(
        {
            "sweep_id": sweep.sweep_id,
            "config_hash": sweep.config_hash,
            "planned": planned,
            "points": len(sweep.points),
        }
    )


def sweep_table(sweep: SweepState) -> list[list[Cell]]:
    """One row per point, columns `SWEEP_COLUMNS`."""
    return [
        [
            p.name,
            p.lr_multiplier,
            p.learning_rate,
            p.lora_rank,
            p.batch_size,
            p.run_id,
            p.status,
            p.final_val_nll,
            p.final_loss,
            p.final_reward,
        ]
        for p in sweep.points
    ]
