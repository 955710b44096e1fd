"""The eval diff: two versions on one task, sample by sample, under the paired test above it.

For a registry task the two sides are each version's latest finished run of the task (the runs
`chief compare` pairs), and the test is `Registry.compare`'s own on the task's headline metric
(McNemar on pass/fail outcomes, else the paired bootstrap, with the project's `[gate]` settings):
the numbers match `chief compare A B` exactly. For two `chief eval-offline` outputs of one data
file the same `paired_on_samples` runs on their records' verdicts.

Each sample falls in one category, B against A: `fixed` (A wrong, B right), `broken` (A right,
B wrong), `both_wrong`, `both_right`; for scored (not pass/fail) outcomes `improved`,
`regressed` or `same` by the metric's direction; `unpaired` when one side has no outcome.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import TYPE_CHECKING, TypedDict

from tinker_chief.errors import EvalError
from tinker_chief.playground.context import PlaygroundContext
from tinker_chief.playground.sample_records import (
    OFFLINE_PREFIX,
    RunRecords,
    offline_records,
    offline_results,
    registry_run_records,
)

if TYPE_CHECKING:
    from tinker_chief.registry import EvalRun, PairedTest, Registry, SampleOutcome

CATEGORIES = (
    "fixed",
    "broken",
    "both_wrong",
    "both_right",
    "improved",
    "regressed",
    "same",
    "unpaired",
)
DISAGREE = ("fixed", "broken", "improved", "regressed")


class NothingToDiff(EvalError, LookupError):
    """A side of the diff has no result on the task (answered 404 by the page's API)."""


_PASS_CATEGORY = {
    (False, True): "fixed",
    (True, False): "broken",
    (False, False): "both_wrong",
    (True, True): "both_right",
}


class DiffVersion(TypedDict):
    """One side a task can be diffed on: a registry version or an eval-offline output."""

    ref: str
    label: str
    status: str | None
    trained: bool


class DiffTask(TypedDict):
    """A task of the diff catalog and the versions that ran it."""

    name: str
    kind: str  # "registry" or "offline"
    versions: list[DiffVersion]


def diff_catalog(context: PlaygroundContext, registry: Registry | None) -> list[DiffTask]:
    """Every task that can be diffed and the versions (or eval-offline outputs) that ran it."""
    tasks: dict[str, DiffTask] = {}
    if registry is not None:
        for model in registry.list_models():
            for task in registry.latest_results(model.ref):
                entry = tasks.setdefault(task, {"name": task, "kind": "registry", "versions": []})
                trained = model.tinker_path is not None
                entry["versions"].append(_version(model.ref, model.status, model.status, trained))
    for result in offline_results(context.paths):
        entry = tasks.setdefault(
            result.task, {"name": result.task, "kind": "offline", "versions": []}
        )
        trained = result.model.startswith("tinker://")
        entry["versions"].append(_version(result.name, result.model, None, trained))
    return list(tasks.values())


def _version(ref: str, detail: str, status: str | None, trained: bool) -> DiffVersion:
    return {"ref": ref, "label": f"{ref} ({detail})", "status": status, "trained": trained}


def build_diff(
    context: PlaygroundContext, registry: Registry | None, task: str, a: str, b: str
) -> dict[str, object]:
    """The diff of `b` against `a` on `task` (see the module docstring)."""
    if task.startswith(OFFLINE_PREFIX):
        return _offline_diff(context, task, a, b)
    if registry is None:
        raise NothingToDiff(
            f"no registry at {context.registry_path}: nothing was evaluated in this project yet"
        )
    return _registry_diff(context, registry, task, a, b)


def _run_of(registry: Registry, ref: str, task: str) -> EvalRun:
    runs = registry.latest_results(ref)  # an unknown ref is a ModelNotFoundError naming it
    if task not in runs:
        have = ", ".join(sorted(runs)) or "none"
        raise NothingToDiff(f"`{ref}` has no finished run of task `{task}` (its tasks: {have})")
    return runs[task]


def _registry_diff(
    context: PlaygroundContext, registry: Registry, task: str, a: str, b: str
) -> dict[str, object]:
    runs = [_run_of(registry, ref, task) for ref in (a, b)]
    models = [registry.get_model(ref) for ref in (a, b)]
    headline = runs[1].headline_metric or runs[0].headline_metric
    test: PairedTest | None = None
    if headline:
        rows = registry.compare([a, b], [f"{task}/{headline}"], rules=context.rules).rows
        test = rows[0].tests[1] if rows else None  # B against A, as `chief compare A B` tests it
    outcomes = [{s.sample_id: s for s in registry.samples(run.id)} for run in runs]
    renderer = context.renderer_choice
    records = [
        registry_run_records(context.paths, model, run, renderer)
        for model, run in zip(models, runs, strict=True)
    ]
    sides: list[dict[str, object]] = [
        {
            "ref": model.ref,
            "status": model.status,
            "run_id": run.id,
            "suite_version": run.suite_version,
            "value": run.metrics[headline].to_dict() if headline in run.metrics else None,
        }
        for model, run in zip(models, runs)
    ]
    notes = []
    if runs[0].suite_version != runs[1].suite_version:
        notes.append(
            f"the runs are on different suite versions ({runs[0].suite_version} and "
            f"{runs[1].suite_version}): only the samples both have are paired"
        )
    higher = context.rules.higher_is_better(headline) if headline else True
    return _assemble(
        task, "registry", headline, higher, sides, outcomes, records, test, context, notes
    )


def _offline_diff(context: PlaygroundContext, task: str, a: str, b: str) -> dict[str, object]:
    from tinker_chief.registry import SampleOutcome
    from tinker_chief.registry.stats import paired_on_samples

    results = {r.name: r for r in offline_results(context.paths) if r.task == task}
    for ref in (a, b):
        if ref not in results:
            have = ", ".join(sorted(results)) or "none"
            raise NothingToDiff(
                f"no eval-offline output `{ref}` on {task.removeprefix(OFFLINE_PREFIX)} "
                f"(there are: {have})"
            )
    records = [offline_records(results[ref]) for ref in (a, b)]
    outcomes = [
        {
            sid: SampleOutcome(sid, float(d.correct), d.correct)
            for sid, d in side.details.items()
            if d.correct is not None
        }
        for side in records
    ]
    rules = context.rules
    test = paired_on_samples(
        list(outcomes[1].values()),
        list(outcomes[0].values()),
        resamples=rules.bootstrap_resamples,
        seed=rules.seed,
    )
    sides: list[dict[str, object]] = []
    for ref, outcome in zip((a, b), outcomes):
        passed = sum(1 for o in outcome.values() if o.passed)
        value = (
            {"name": "accuracy", "value": passed / len(outcome), "n": len(outcome)}
            if outcome
            else None
        )
        sides.append(
            {
                "ref": ref,
                "status": None,
                "run_id": None,
                "model": results[ref].model,
                "value": value,
            }
        )
    return _assemble(task, "offline", "accuracy", True, sides, outcomes, records, test, context, [])


def _natural(sample_id: str) -> list[tuple[int, int, str]]:
    return [
        (0, int(part), "") if part.isdigit() else (1, 0, part)
        for part in re.split(r"(\d+)", sample_id)
    ]


def category(a: SampleOutcome | None, b: SampleOutcome | None, higher_is_better: bool) -> str:
    """B against A for one sample's outcomes (None: the side has no outcome for it)."""
    if a is None or b is None:
        return "unpaired"
    if a.passed is not None and b.passed is not None:
        return _PASS_CATEGORY[(bool(a.passed), bool(b.passed))]
    if a.score == b.score:
        return "same"
    return "improved" if (b.score > a.score) == higher_is_better else "regressed"


def _assemble(
    task: str,
    kind: str,
    headline: str | None,
    higher: bool,
    sides: list[dict[str, object]],
    outcomes: list[dict[str, SampleOutcome]],
    records: list[RunRecords],
    test: PairedTest | None,
    context: PlaygroundContext,
    notes: list[str],
) -> dict[str, object]:
    for side, side_records in zip(sides, records):
        side["records"] = side_records.source
        if side_records.missing:
            notes.append(f"{side['ref']}: {side_records.missing}")
    ids = set(outcomes[0]) | set(outcomes[1]) | set(records[0].details) | set(records[1].details)
    samples = []
    for sample_id in sorted(ids, key=_natural):
        details = [side.details.get(sample_id) for side in records]
        shown = next((d for d in details if d is not None), None)
        views = []
        for outcome, detail in zip((o.get(sample_id) for o in outcomes), details):
            view = detail.to_json() if detail is not None else {}
            view.update(
                score=outcome.score if outcome else None, passed=outcome.passed if outcome else None
            )
            views.append(view)
        samples.append(
            {
                "id": sample_id,
                "category": category(
                    outcomes[0].get(sample_id), outcomes[1].get(sample_id), higher
                ),
                "prompt": shown.prompt if shown else [],
                "target": shown.target if shown else None,
                "a": views[0],
                "b": views[1],
            }
        )
    counts = Counter(s["category"] for s in samples)
    return {
        "task": task,
        "kind": kind,
        "headline": headline,
        "higher_is_better": higher,
        "a": sides[0],
        "b": sides[1],
        "test": _test_json(test, context),
        "counts": {name: counts.get(name, 0) for name in CATEGORIES},
        "samples": samples,
        "notes": notes,
    }


def _test_json(test: PairedTest | None, context: PlaygroundContext) -> dict[str, object] | None:
    """The paired test of B against A: `fixed`/`broken` are McNemar's discordant counts."""
    if test is None:
        return None
    alpha = context.rules.alpha
    return {
        "method": test.method,
        "n": test.n,
        "delta": test.delta,
        "p_value": test.p_value,
        "ci_low": test.ci_low,
        "ci_high": test.ci_high,
        "fixed": test.a_only,
        "broken": test.b_only,
        "alpha": alpha,
        "significant": test.significant(alpha),
    }
