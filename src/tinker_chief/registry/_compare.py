"""`chief compare`: models x metrics, deltas against the first model, the best per metric,
and paired significance on the sample ids two runs share (McNemar for pass/fail outcomes,
paired bootstrap for scores; see `stats`). Each model contributes its latest finished run per
task (on `suite_version` when given); a metric is named `task/metric`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field

from tinker_chief.errors import RegistryError
from tinker_chief.registry import _db
from tinker_chief.registry._gate import SampleLoader
from tinker_chief.registry._records import EvalRun, MetricValue
from tinker_chief.registry._rows import find_model, latest_finished, load_samples
from tinker_chief.registry.rules import GateRules
from tinker_chief.registry.stats import PairedTest, paired_on_samples


@dataclass(frozen=True)
class MetricRow:
    """One metric across the compared models (same order as `Comparison.models`)."""

    task: str
    metric: str
    higher_is_better: bool
    values: list[MetricValue | None]
    deltas: list[float | None]  # value minus the first model's value
    tests: list[PairedTest | None]  # paired test of model i vs the first model; None for i = 0
    best: str | None  # ref of the best model (None on ties or when fewer than two have values)

    @property
    def key(self) -> str:
        return f"{self.task}/{self.metric}"

    def to_dict(self) -> dict[str, object]:
        return {
            "key": self.key,
            "task": self.task,
            "metric": self.metric,
            "higher_is_better": self.higher_is_better,
            "values": [v.to_dict() if v else None for v in self.values],
            "deltas": self.deltas,
            "best": self.best,
            "tests": [t.to_dict() if t else None for t in self.tests],
        }


@dataclass(frozen=True)
class Comparison:
    models: list[str]
    rows: list[MetricRow] = field(default_factory=list)
    suite_versions: dict[str, list[str]] = field(default_factory=dict)  # ref -> versions seen

    def row(self, key: str) -> MetricRow:
        for row in self.rows:
            if row.key == key:
                return row
        raise KeyError(key)

    def to_dict(self) -> dict[str, object]:
        return {
            "models": self.models,
            "suite_versions": self.suite_versions,
            "rows": [row.to_dict() for row in self.rows],
        }


def compare(
    connection: sqlite3.Connection,
    model_refs: Sequence[str],
    metrics: Sequence[str] | None,
    suite_version: str | None,
    rules: GateRules,
) -> Comparison:
    if len(model_refs) < 2:
        raise RegistryError(
            "compare needs at least two models (e.g. chief compare base:v1 tuned:v2)"
        )
    with _db.read(connection) as db:
        models = [find_model(db, ref) for ref in model_refs]
        results = [latest_finished(db, m.id, suite_version) for m in models]
        keys = sorted(
            {(task, name) for res in results for task, run in res.items() for name in run.metrics}
        )
        if metrics:
            wanted = set(metrics)
            keys = [(t, n) for t, n in keys if n in wanted or f"{t}/{n}" in wanted]
        rows = [
            _row(
                task,
                name,
                [m.ref for m in models],
                results,
                rules,
                lambda run_id: load_samples(db, run_id),
            )
            for task, name in keys
        ]
    versions = {
        m.ref: sorted({r.suite_version for r in res.values()}) for m, res in zip(models, results)
    }
    return Comparison([m.ref for m in models], rows, versions)


def _row(
    task: str,
    name: str,
    refs: list[str],
    results: list[dict[str, EvalRun]],
    rules: GateRules,
    samples: SampleLoader,
) -> MetricRow:
    runs = [res.get(task) for res in results]
    values = [run.metrics.get(name) if run else None for run in runs]
    base = values[0]
    deltas = [None if v is None or base is None else v.value - base.value for v in values]
    tests: list[PairedTest | None] = [None]
    for run in runs[1:]:
        tests.append(_paired(runs[0], run, name, rules, samples))
    higher = rules.higher_is_better(name)
    best = None if rules.is_neutral(name) else _best(refs, values, higher)
    return MetricRow(task, name, higher, values, deltas, tests, best)


def _paired(
    base: EvalRun | None, run: EvalRun | None, name: str, rules: GateRules, samples: SampleLoader
) -> PairedTest | None:
    # Per-sample outcomes belong to a run's headline metric; other metrics get no paired test.
    if base is None or run is None or not (name == run.headline_metric == base.headline_metric):
        return None
    return paired_on_samples(
        samples(run.id), samples(base.id), resamples=rules.bootstrap_resamples, seed=rules.seed
    )


def _best(refs: list[str], values: list[MetricValue | None], higher: bool) -> str | None:
    present = [(v.value, ref) for v, ref in zip(values, refs) if v is not None]
    if len(present) < 2:
        return None
    pick = max if higher else min
    top = pick(value for value, _ in present)
    winners = [ref for value, ref in present if value == top]
    return winners[0] if len(winners) == 1 else None
