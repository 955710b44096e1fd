"""`chief sweep`: a grid of training runs around the plan, run concurrently on one backend.

The grid multiplies the plan's learning rate (default 1/4x..4x, the LoRA Without Regret sweep),
crosses it with LoRA ranks (default the plan's) and optionally batch sizes. Every point is a
normal `train()` run in its own thread against the one open connection (on the local engine the
runs share one frozen base model; on Tinker's cloud they run in parallel): its own run directory,
inline evals, checkpoints registered with their hyperparameters and lineage, plus the sweep's id
and point under `sweep` in each registry version's config.

State lives in `<project>/.chief/sweeps/<sweep_id>/sweep.json`: the grid, the run each point
trains in, its status and final numbers, and a summary of where the best learning rate fell
relative to the plan's (and to `get_lr`'s, from plan.json) per rank: by the final reward
for RL (higher is better), else the final validation NLL, else the final train loss. One
Ctrl-C stops every run at a checkpoint, and so does the budget (`spend.budget.BudgetGuard`,
asked after every step of every point); `--resume` skips finished points, resumes the
interrupted runs where they stopped and starts those that never began. `chief report` reads
the file as it is documented here, without importing this module. With a tracker (`--track`)
the sweep is one group there (`tracking.observer.SweepTracker`: MLflow's parent run, a W&B or
Trackio group) holding one tracker run per point, and its summary ends the group.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import NamedTuple, NotRequired, TypedDict

from pydantic import ValidationError

from tinker_chief.connection import Connection
from tinker_chief.errors import ChiefError, ConfigurationError, TrainingError
from tinker_chief.files import JsonObject, read_json
from tinker_chief.paths import ProjectPaths, SweepPaths
from tinker_chief.planning.config import config_errors
from tinker_chief.spend.budget import BudgetGuard
from tinker_chief.tracking.mirror import Tracking
from tinker_chief.tracking.observer import fan_out
from tinker_chief.training.from_project import registry_sink_factory, spec_from_project
from tinker_chief.training.loop import Observer, StopRequest, TrainResult
from tinker_chief.training.runlog import CheckpointRecord, RunLog
from tinker_chief.training.session import load_renderer, prepare, train
from tinker_chief.training.spec import TrainSpec
from tinker_chief.workspace import Workspace

DEFAULT_LR_MULTIPLIERS = (0.25, 0.5, 1.0, 2.0, 4.0)
# Best values (NLL, loss or reward) of two ranks within 2% of each other: rank did not change the
# result (LoRA Without Regret: ranks reach about the same loss, each at its own best LR).
RANK_EFFECT = 0.02
# "final loss" and "final reward": the mean over the last 10% of steps (at least one).
FINAL_LOSS_TAIL = 0.1


@dataclass
class SweepPoint:
    """One grid point and the run that trains it."""

    name: str  # e.g. "lr0.5x-r16"
    lr_multiplier: float
    learning_rate: float
    lora_rank: int
    batch_size: int
    run_id: str | None = None
    status: str = "pending"  # pending, running, interrupted, stopped, budget, finished, failed
    error: str | None = None
    steps_done: int = 0
    total_steps: int | None = None
    final_val_nll: float | None = None
    final_loss: float | None = None
    final_reward: float | None = None  # RL: mean train/reward over the last steps (as final_loss)
    candidate: str | None = None  # registry ref of the run's last checkpoint


@dataclass
class Sweep:
    """A sweep directory's state; `save()` rewrites sweep.json atomically."""

    sweep_id: str
    dir: Path
    config_hash: str  # of the plan's spec the grid was built around
    planned_lr: float
    planned_rank: int
    planned_batch_size: int
    get_lr: float | None  # plan.json's get_lr recommendation, when the plan was written
    points: list[SweepPoint]
    status: str = "running"
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def to_json(self) -> dict[str, object]:
        return {
            "sweep_id": self.sweep_id,
            "status": self.status,
            "config_hash": self.config_hash,
            "planned": {
                "learning_rate": self.planned_lr,
                "lora_rank": self.planned_rank,
                "batch_size": self.planned_batch_size,
                "get_lr": self.get_lr,
            },
            "points": [asdict(p) for p in self.points],
            "summary": summarize(self),
        }

    @property
    def path(self) -> Path:
        """This sweep's `sweep.json`."""
        return SweepPaths(self.dir).state

    def save(self) -> None:
        with self._lock:
            path = self.path
            tmp = path.with_suffix(".json.tmp")
            tmp.write_text(json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n")
            os.replace(tmp, path)

    def update(self, point: SweepPoint, **changes: object) -> None:
        for key, value in changes.items():
            setattr(point, key, value)
        self.save()

    @classmethod
    def load(cls, sweep_dir: Path) -> Sweep:
        path = SweepPaths(sweep_dir).state
        raw = read_json(path, error=TrainingError)
        try:
            planned = raw["planned"]
            known = {f.name for f in fields(SweepPoint)}
            points = [
                SweepPoint(**{k: v for k, v in p.items() if k in known}) for p in raw["points"]
            ]
            return cls(
                raw["sweep_id"],
                sweep_dir,
                raw["config_hash"],
                planned["learning_rate"],
                planned["lora_rank"],
                planned["batch_size"],
                planned.get("get_lr"),
                points,
                raw.get("status", "running"),
            )
        except (KeyError, TypeError) as exc:
            raise TrainingError(
                f"{path}: not a chief sweep file (missing or bad field {exc})"
            ) from None


def sweep_dirs(project_dir: Path) -> list[Path]:
    """The project's sweep directories, oldest first."""
    root = ProjectPaths(project_dir).sweeps
    dirs = [d for d in root.iterdir() if SweepPaths(d).state.exists()] if root.is_dir() else []
    return sorted(dirs, key=lambda d: SweepPaths(d).state.stat().st_mtime)


def load_sweep(project_dir: Path, sweep_id: str | None = None) -> Sweep:
    """The sweep named `sweep_id`, else the latest; a one-line error when there is none."""
    if sweep_id is not None:
        path = ProjectPaths(project_dir).sweeps / sweep_id
        if not SweepPaths(path).state.exists():
            known = ", ".join(d.name for d in sweep_dirs(project_dir)) or "none"
            raise TrainingError(
                f"no sweep {sweep_id!r} under {ProjectPaths(project_dir).sweeps} (sweeps: {known})"
            )
        return Sweep.load(path)
    dirs = sweep_dirs(project_dir)
    if not dirs:
        raise TrainingError(
            f"no sweep under {ProjectPaths(project_dir).sweeps}; run `chief sweep` first"
        )
    return Sweep.load(dirs[-1])


# ----------------------------------------------------------------------------- the grid


def _positive(values: Sequence[float], flag: str) -> list[float]:
    bad = [v for v in values if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0)]
    if bad:
        raise ConfigurationError(f"{flag}: expected positive numbers, got {bad[0]!r}")
    return list(dict.fromkeys(values))  # drop repeats, keep the order given


def grid(
    spec: TrainSpec,
    lr_multipliers: Sequence[float] = DEFAULT_LR_MULTIPLIERS,
    ranks: Sequence[int] = (),
    batch_sizes: Sequence[int] = (),
) -> list[SweepPoint]:
    """The points around `spec` (the plan's run): LR multipliers x ranks x batch sizes."""
    multipliers = _positive(lr_multipliers, "--lr-multipliers")
    rank_list = [int(r) for r in _positive(ranks, "--ranks")] or [spec.lora.rank]
    batches = [int(b) for b in _positive(batch_sizes, "--batch-sizes")] or [spec.batch_size]
    points = []
    for batch in batches:
        for rank in rank_list:
            for m in multipliers:
                name = f"lr{m:g}x-r{rank}" + (f"-b{batch}" if len(batches) > 1 else "")
                points.append(SweepPoint(name, m, spec.optimizer.learning_rate * m, rank, batch))
    for point in points:  # a rank or batch size chief.toml would refuse: one line, before any run
        try:
            point_spec(spec, point)
        except ValidationError as exc:
            raise config_errors(exc, f"sweep point {point.name}") from None
    return points


def point_spec(spec: TrainSpec, point: SweepPoint) -> TrainSpec:
    """The plan's spec with the point's learning rate, rank and batch size (validated)."""
    return spec.with_hyperparameters(
        learning_rate=point.learning_rate, rank=point.lora_rank, batch_size=point.batch_size
    )


def planned_get_lr(project_dir: Path) -> float | None:
    """`get_lr`'s value as the plan recorded it (plan.json), or None without a plan."""
    path = ProjectPaths(project_dir).plan_json
    if not path.exists():
        return None
    plan = read_json(path, error=TrainingError)
    value = (
        ((plan.get("learning_rate") or {}).get("recommended") or {}).get("value")
        if isinstance(plan, dict)
        else None
    )
    return float(value) if isinstance(value, (int, float)) and value > 0 else None


def create_sweep(project_dir: Path, spec: TrainSpec, points: list[SweepPoint]) -> Sweep:
    root = ProjectPaths(project_dir).sweeps
    root.mkdir(parents=True, exist_ok=True)
    stamp, n = time.strftime("%Y%m%d-%H%M%S", time.gmtime()), 1
    sweep_dir = root / f"sweep-{stamp}"
    while True:
        try:
            sweep_dir.mkdir()
            break
        except FileExistsError:
            n += 1
            sweep_dir = root / f"sweep-{stamp}-{n}"
    sweep = Sweep(
        sweep_dir.name,
        sweep_dir,
        spec.config_hash(),
        spec.optimizer.learning_rate,
        spec.lora.rank,
        spec.batch_size,
        planned_get_lr(project_dir),
        points,
    )
    sweep.save()
    return sweep


# ----------------------------------------------------------------------------- results


class RunResults(NamedTuple):
    """A run's final numbers from its metrics.jsonl (None: the run logged no such metric)."""

    val_nll: float | None  # the last validation NLL
    loss: float | None  # mean train loss over the tail (the last FINAL_LOSS_TAIL of steps)
    reward: float | None  # mean train/reward over the same tail (RL runs)


def tail_mean(values: list[float]) -> float | None:
    """The mean of the last FINAL_LOSS_TAIL of `values` (at least one); None for none."""
    tail = values[-max(1, round(len(values) * FINAL_LOSS_TAIL)) :]
    return sum(tail) / len(tail) if tail else None


def run_results(run_dir: Path) -> RunResults:
    """A run's final validation NLL, train loss and reward, from its metrics.jsonl."""
    rows = RunLog(run_dir).metrics()

    def series(key: str) -> list[float]:
        return [r[key] for r in rows if isinstance(r.get(key), (int, float))]

    nll = series("val/nll")
    last_nll = nll[-1] if nll else None
    return RunResults(last_nll, tail_mean(series("train/loss")), tail_mean(series("train/reward")))


# What ranks a sweep's points, first present wins: RL's reward (higher is better), else the
# validation NLL, else (no validation data) the final train loss (lower is better for both).
HIGHER_IS_BETTER = {"train/reward": True, "val/nll": False, "train/loss": False}
METRIC_WORDS = {
    "train/reward": "final reward (mean of the last steps)",
    "val/nll": "final validation NLL",
    "train/loss": "final train loss (mean of the last steps)",
}


def _score(point: SweepPoint) -> tuple[str, float] | None:
    """(metric, value) the point is ranked by; None when it has none of them."""
    for metric, value in (
        ("train/reward", point.final_reward),
        ("val/nll", point.final_val_nll),
        ("train/loss", point.final_loss),
    ):
        if value is not None:
            return metric, value
    return None


def _better_first(point: SweepPoint) -> float:
    """A sort key: the best point by its metric first (rewards descending, losses ascending)."""
    metric, value = _score(point) or ("train/loss", math.inf)
    return -value if HIGHER_IS_BETTER[metric] else value


class RankSummary(TypedDict):
    """One LoRA rank's best point in a sweep's summary."""

    lora_rank: int
    best_point: str
    best_lr: float
    metric: str
    higher_is_better: bool
    best_value: float
    ratio_to_plan: float
    ratio_to_get_lr: float | None
    at_grid_edge: bool


class SweepSummary(TypedDict):
    """sweep.json's `summary`: the best LR per rank, and whether rank mattered."""

    per_rank: list[RankSummary]
    finished_points: int
    points: int
    metric: NotRequired[str]  # with at least one finished point
    higher_is_better: NotRequired[bool]
    rank_spread: NotRequired[float]  # with more than one rank
    rank_changed_result: NotRequired[bool]
    lines: NotRequired[list[str]]  # the summary in words (`summary_lines`), always set last


def summarize(sweep: Sweep) -> SweepSummary:
    """Where the best LR fell per rank (vs the plan's and get_lr's), and whether rank mattered."""
    done = [p for p in sweep.points if p.status == "finished" and _score(p) is not None]
    by_rank: dict[int, list[SweepPoint]] = {}
    for p in done:
        by_rank.setdefault(p.lora_rank, []).append(p)
    per_rank: list[RankSummary] = []
    best_values: list[float] = []
    for rank, points in sorted(by_rank.items()):
        best = min(points, key=lambda p: (_better_first(p), p.learning_rate))
        metric, value = _score(best) or ("train/loss", math.nan)
        best_values.append(value)
        per_rank.append(
            {
                "lora_rank": rank,
                "best_point": best.name,
                "best_lr": best.learning_rate,
                "metric": metric,
                "higher_is_better": HIGHER_IS_BETTER[metric],
                "best_value": value,
                "ratio_to_plan": best.learning_rate / sweep.planned_lr,
                "ratio_to_get_lr": best.learning_rate / sweep.get_lr if sweep.get_lr else None,
                "at_grid_edge": best.learning_rate
                in (min(p.learning_rate for p in points), max(p.learning_rate for p in points))
                and len(points) > 1,
            }
        )
    summary: SweepSummary = {
        "per_rank": per_rank,
        "finished_points": len(done),
        "points": len(sweep.points),
    }
    if per_rank:
        summary["metric"] = per_rank[0]["metric"]
        summary["higher_is_better"] = per_rank[0]["higher_is_better"]
    if len(per_rank) > 1:
        # Relative to the best rank's value (a loss's minimum, a reward's maximum).
        top = max(best_values) if summary["higher_is_better"] else min(best_values)
        spread = (max(best_values) - min(best_values)) / max(abs(top), 1e-12)
        summary["rank_spread"] = spread
        summary["rank_changed_result"] = spread > RANK_EFFECT
    summary["lines"] = summary_lines(summary, sweep)
    return summary


def summary_lines(summary: SweepSummary, sweep: Sweep) -> list[str]:
    """The summary in words, as `chief sweep`, `chief plan` and the report print it."""
    lines = []
    if "metric" in summary:
        metric, better = summary["metric"], "higher" if summary["higher_is_better"] else "lower"
        lines.append(f"ranked by {METRIC_WORDS[metric]} ({metric}; {better} is better)")
    for r in summary["per_rank"]:
        where = f"{r['ratio_to_plan']:g}x the plan's {sweep.planned_lr:.3g}"
        if r["ratio_to_get_lr"] is not None:
            where += f", {r['ratio_to_get_lr']:.3g}x get_lr's {sweep.get_lr:.3g}"
        edge = " (at the edge of the grid: the best may lie beyond it)" if r["at_grid_edge"] else ""
        lines.append(
            f"rank {r['lora_rank']}: best LR {r['best_lr']:.3g} ({where}), "
            f"{r['metric']} {r['best_value']:.4f}{edge}"
        )
    if "rank_changed_result" in summary:
        verdict = "yes" if summary["rank_changed_result"] else "no"
        lines.append(
            f"rank changed the result: {verdict} "
            f"(best values differ by {summary['rank_spread']:.1%}; threshold {RANK_EFFECT:.0%})"
        )
    if summary["finished_points"] < summary["points"]:
        lines.append(f"{summary['finished_points']} of {summary['points']} points finished")
    return lines


# ----------------------------------------------------------------------------- running


class _PointObserver:
    """Records the run id and progress of one point in sweep.json, and forwards to the display."""

    def __init__(self, sweep: Sweep, point: SweepPoint, display: Observer | None) -> None:
        self.sweep, self.point, self.display = sweep, point, display

    def on_start(self, run_id: str, start_step: int, total_steps: int) -> None:
        self.sweep.update(
            self.point,
            run_id=run_id,
            status="running",
            steps_done=start_step,
            total_steps=total_steps,
            error=None,
        )
        if self.display:
            self.display.on_start(run_id, start_step, total_steps)

    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        self.point.steps_done = step
        if self.display:
            self.display.on_step(step, metrics)

    def on_eval(self, step: int, metrics: dict[str, float]) -> None:
        if self.display:
            self.display.on_eval(step, metrics)

    def on_checkpoint(self, record: CheckpointRecord) -> None:
        self.sweep.save()  # the point's progress, so far, survives a crash
        if self.display:
            self.display.on_checkpoint(record)

    def on_end(self, result: TrainResult) -> None:
        if self.display:
            self.display.on_end(result)


def _run_status(project_dir: Path, point: SweepPoint) -> JsonObject | None:
    """run.json of the point's run, when it has one (None: the point never started a run)."""
    if point.run_id is None:
        return None
    log = RunLog(ProjectPaths(project_dir).runs / point.run_id)
    return log.status() if log.exists() else None


def _record_finished(sweep: Sweep, point: SweepPoint, run_dir: Path, status: JsonObject) -> None:
    results = run_results(run_dir)
    sweep.update(
        point,
        status=status.get("status", "finished"),
        steps_done=status.get("steps_done", 0),
        total_steps=status.get("total_steps"),
        final_val_nll=results.val_nll,
        final_loss=results.loss,
        final_reward=results.reward,
        candidate=status.get("candidate"),
    )


def _train_point(
    project: Workspace,
    spec: TrainSpec,
    sweep: Sweep,
    point: SweepPoint,
    connection: Connection,
    stop: StopRequest,
    display: Observer | None,
    guard: BudgetGuard | None = None,
) -> None:
    tag = {
        "sweep": {"id": sweep.sweep_id, "point": point.name, "lr_multiplier": point.lr_multiplier}
    }
    status = _run_status(project.root, point)
    # Finished before the sweep noted it.
    if status is not None and status.get("status") == "finished":
        _record_finished(sweep, point, ProjectPaths(project.root).runs / str(point.run_id), status)
        return
    try:
        result = train(
            project.root,
            point_spec(spec, point),
            connection=connection,
            resume=point.run_id if status is not None and point.run_id else False,
            sink_factory=registry_sink_factory(project, tag),
            observer=_PointObserver(sweep, point, display),
            stop=stop,
            guard=guard.for_run(point.name) if guard is not None else None,
        )
    except Exception as exc:
        # A bad point, or an SDK or engine failure, ends this run only; the others go on.
        sweep.update(
            point,
            status="failed",
            error=str(exc) if isinstance(exc, ChiefError) else f"{type(exc).__name__}: {exc}",
        )
        return
    sweep.update(point, run_id=result.run_id)
    _record_finished(sweep, point, result.run_dir, RunLog(result.run_dir).status())


def planned_points(
    project: Workspace,
    *,
    lr_multipliers: Sequence[float] = DEFAULT_LR_MULTIPLIERS,
    ranks: Sequence[int] = (),
    batch_sizes: Sequence[int] = (),
) -> list[SweepPoint]:
    """The points a new sweep around the project's plan would train (validated; nothing written)."""
    return grid(spec_from_project(project), lr_multipliers, ranks, batch_sizes)


def start_sweep(
    project: Workspace,
    *,
    lr_multipliers: Sequence[float] = DEFAULT_LR_MULTIPLIERS,
    ranks: Sequence[int] = (),
    batch_sizes: Sequence[int] = (),
) -> Sweep:
    """A new sweep around the project's plan (validated: nothing runs yet)."""
    spec = spec_from_project(project)
    points = grid(spec, lr_multipliers, ranks, batch_sizes)
    prepare(spec, project.root)  # a data error is one line now, not one per thread later
    return create_sweep(project.root, spec, points)


def resume_sweep(project: Workspace, sweep_id: str | None = None) -> Sweep:
    """The sweep to continue (named, else the latest), refused if finished or the plan changed."""
    sweep = load_sweep(project.root, sweep_id)
    if sweep.status == "finished":
        raise TrainingError(
            f"--resume: sweep {sweep.sweep_id} already finished; start a new sweep without --resume"
        )
    current = spec_from_project(project).config_hash()
    if current != sweep.config_hash:
        raise TrainingError(
            f"--resume: sweep {sweep.sweep_id} was started with a different plan (config "
            f"{sweep.config_hash} vs {current}); re-plan back or start a new sweep without --resume"
        )
    return sweep


def run_sweep(
    project: Workspace,
    sweep: Sweep,
    connection: Connection | None = None,
    *,
    parallel: int | None = None,
    display: Callable[[SweepPoint], Observer | None] | None = None,
    backend: str | None = None,
    base_url: str | None = None,
    tracking: Tracking | None = None,
    guard: BudgetGuard | None = None,
) -> Sweep:
    """Train every unfinished point of `sweep`, `parallel` at a time (default: all at once), each in
    its own thread on `connection` (else on one connection to the project's backend, `backend` and
    `base_url` in its precedence). Ctrl-C stops them all at a checkpoint; the sweep is then
    `interrupted` and `resume_sweep` + `run_sweep` continue it. `tracking`: the sweep as one group
    in an experiment tracker, a run per point. `guard`: the budget every point asks after each
    step; when it stops them, each running point saves a checkpoint (status `budget`), the points
    not started stay `pending` and the sweep is `budget`."""
    if parallel is not None and parallel < 1:
        raise ConfigurationError(f"--parallel: expected a positive number, got {parallel}")
    group = tracking.sweep(project.root, sweep) if tracking is not None else None

    def observer(point: SweepPoint) -> Observer | None:
        shown = display(point) if display else None
        return fan_out(shown, group.observer(point) if group is not None else None)

    try:
        with project.connected(connection, backend=backend, base_url=base_url) as connected:
            _run_points(project, sweep, connected, parallel, observer, guard)
    finally:  # a sweep that could not run still ends its group (MLflow: the parent run, killed)
        if group is not None:
            group.finish(summarize(sweep)["lines"])
    return sweep


def _run_points(
    project: Workspace,
    sweep: Sweep,
    connection: Connection,
    parallel: int | None,
    display: Callable[[SweepPoint], Observer | None] | None,
    guard: BudgetGuard | None = None,
) -> Sweep:
    spec = spec_from_project(project)
    todo = [p for p in sweep.points if p.status != "finished"]
    width = min(parallel or len(todo), len(todo)) or 1
    connection.service_client()  # created once here, then shared by every thread
    # `transformers`' lazy module is not thread-safe on first import: points importing it at once
    # fail with "cannot import name 'AutoTokenizer'". Loading the tokenizer and renderer here makes
    # this thread the first importer, whether the sweep is new or resumed in a fresh process.
    load_renderer(spec)
    sweep.status = "running"
    sweep.save()
    stop, queue, lock = StopRequest(), list(todo), threading.Lock()

    def worker() -> None:
        while not stop.requested:
            with lock:
                if not queue:
                    return
                point = queue.pop(0)
            if guard is not None and not guard.start(point.name):
                return  # the budget stopped the sweep: this point stays pending
            try:
                observer = display(point) if display else None
                _train_point(project, spec, sweep, point, connection, stop, observer, guard)
            finally:
                if guard is not None:
                    guard.ended(point.name)

    # Daemon threads: a second Ctrl-C aborts the main thread, and the process, at once.
    threads = [
        threading.Thread(target=worker, name=f"sweep-{i}", daemon=True) for i in range(width)
    ]
    with stop.installed():
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():
                thread.join(0.2)  # short joins so the main thread keeps taking signals
    statuses = {p.status for p in sweep.points}
    by_budget = guard is not None and guard.reason is not None and not stop.requested
    sweep.status = (
        "finished"
        if statuses == {"finished"}
        else "budget"
        if by_budget
        else "interrupted"
        if stop.requested or statuses & {"interrupted", "stopped", "pending", "running"}
        else "failed"
    )
    sweep.save()
    return sweep


def latest_summary_lines(project_dir: Path) -> list[str]:
    """`chief plan`'s view of the latest sweep: its id and where the best LR fell; [] without
    one."""
    dirs = sweep_dirs(project_dir)
    if not dirs:
        return []
    sweep = Sweep.load(dirs[-1])
    return [f"sweep {sweep.sweep_id} ({sweep.status}):", *summarize(sweep)["lines"]]
