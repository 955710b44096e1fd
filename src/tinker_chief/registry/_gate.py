"""The promotion gate: every reason a model may not become prod, all listed at once.

Three rules: (1) every task of the agreed suite has a finished eval of this exact
model on the current suite version, whose headline metric was scored (a run where no sample
could be scored is evidence of nothing: it blocks, saying why, rather than reading "missing");
(2) no metric is worse than the current prod model's beyond its tolerance *with* statistical
evidence (paired test on shared samples, else CIs); (3) safety metrics meet their thresholds.
`evaluate_gate` is pure: it takes the results it judges, so the store can run it on a read
snapshot and apply the verdict in a write.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from tinker_chief.registry._records import EvalRun, MetricValue, ModelRecord, SampleOutcome
from tinker_chief.registry.rules import GateRules, SuiteRequirement
from tinker_chief.registry.stats import paired_on_samples, unpaired_from_cis

SampleLoader = Callable[[int], list[SampleOutcome]]


@dataclass(frozen=True)
class GateReport:
    """The gate's verdict on one promotion; `prod_ref` is the prod model it was judged against."""

    model_ref: str
    to: str
    prod_ref: str | None
    suite_name: str | None
    suite_version: str | None
    reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.reasons

    def to_dict(self) -> dict[str, object]:
        return {**self.__dict__, "passed": self.passed}


def evaluate_gate(
    model: ModelRecord,
    results: dict[str, EvalRun],
    prod: ModelRecord | None,
    prod_results: dict[str, EvalRun],
    suite: SuiteRequirement | None,
    rules: GateRules,
    samples: SampleLoader,
) -> GateReport:
    """Judge `model` (its current-suite results) for prod against `prod` (its results)."""
    reasons: list[str] = []
    notes: list[str] = []
    if suite is None:
        reasons.append(
            "no agreed eval suite: cannot check that evals are current (run from a project "
            "with chief.toml, or pass --project DIR)"
        )
    elif not suite.task_names():  # passing every one of no tasks would pass any model
        reasons.append(
            f"the agreed eval suite `{suite.name}` has no tasks: nothing shows {model.ref} is fit "
            "for prod; add tasks to [eval_suite] in chief.toml and run `chief eval`"
        )
    else:
        reasons += _stale_reasons(model, results, suite)
        reasons += _not_scored_reasons(model, results, suite)
        if prod is not None and prod.id != model.id:
            reasons += _regression_reasons(
                model, results, prod, prod_results, suite, rules, samples, notes
            )
        reasons += _safety_reasons(results, suite, rules)
    return GateReport(
        model.ref,
        "prod",
        prod.ref if prod else None,
        suite.name if suite else None,
        suite.version if suite else None,
        reasons,
        notes,
    )


def _stale_reasons(
    model: ModelRecord, results: dict[str, EvalRun], suite: SuiteRequirement
) -> list[str]:
    return [
        f"stale or missing eval: task `{task}` of suite `{suite.name}` (version {suite.version}) "
        f"has no finished run on {model.ref}; run `chief eval {model.ref} --task {task}`"
        for task in suite.task_names()
        if task not in results
    ]


def _not_scored_reasons(
    model: ModelRecord, results: dict[str, EvalRun], suite: SuiteRequirement
) -> list[str]:
    reasons = []
    for task in suite.tasks:
        run = results.get(task.name)
        why = run.not_scored.get(task.headline_metric) if run else None
        if why is not None:
            reasons.append(
                f"not scored: task `{task.name}` of suite `{suite.name}` ran on {model.ref} but "
                f"its headline metric `{task.headline_metric}` has no value ({why}); fix the "
                f"task, then run `chief eval {model.ref} --task {task.name}`"
            )
    return reasons


def _regression_reasons(
    model: ModelRecord,
    results: dict[str, EvalRun],
    prod: ModelRecord,
    prod_results: dict[str, EvalRun],
    suite: SuiteRequirement,
    rules: GateRules,
    samples: SampleLoader,
    notes: list[str],
) -> list[str]:
    reasons: list[str] = []
    for task in suite.task_names():
        run = results.get(task)
        if run is None:
            continue  # already reported as stale
        prod_run = prod_results.get(task)
        if prod_run is None:
            reasons.append(
                f"prod model {prod.ref} has no finished eval of task `{task}` on suite version "
                f"{suite.version}, so a regression cannot be ruled out; run `chief eval {prod.ref}`"
            )
            continue
        for name in sorted(set(run.metrics) & set(prod_run.not_scored)):
            notes.append(
                f"`{task}/{name}`: prod {prod.ref} was not scored on it, so there is no "
                "regression to test"
            )
        for name in sorted(
            set(run.metrics)
            & set(prod_run.metrics) - {n for n in run.metrics if rules.is_neutral(n)}
        ):
            reason = _metric_regression(task, name, run, prod_run, prod, rules, samples, notes)
            if reason:
                reasons.append(reason)
    return reasons


def _metric_regression(
    task: str,
    name: str,
    run: EvalRun,
    prod_run: EvalRun,
    prod: ModelRecord,
    rules: GateRules,
    samples: SampleLoader,
    notes: list[str],
) -> str | None:
    ours, theirs = run.metrics[name], prod_run.metrics[name]
    sign = 1.0 if rules.higher_is_better(name) else -1.0
    drop = sign * (theirs.value - ours.value)
    tolerance = rules.tolerance(task, name)
    if drop <= tolerance:
        return None
    evidence, p_value = _evidence(name, run, prod_run, ours, theirs, rules, samples)
    where = f"`{task}/{name}`: {ours.value:.4g} vs prod {prod.ref} {theirs.value:.4g}"
    if p_value is None:
        if rules.missing_evidence == "pass":
            notes.append(
                f"{where}: drop {drop:.4g} > {tolerance:.4g} but no samples or CIs to test it"
            )
            return None
        return (
            f"regression on {where} (drop {drop:.4g} > tolerance {tolerance:.4g}) and no "
            "per-sample outcomes or confidence intervals to show it is noise"
        )
    if p_value < rules.alpha:
        return (
            f"regression on {where} (drop {drop:.4g} > tolerance {tolerance:.4g}, "
            f"{evidence} p={p_value:.3g} < {rules.alpha})"
        )
    notes.append(f"{where}: drop {drop:.4g} is not significant ({evidence} p={p_value:.3g})")
    return None


def _evidence(
    name: str,
    run: EvalRun,
    prod_run: EvalRun,
    ours: MetricValue,
    theirs: MetricValue,
    rules: GateRules,
    samples: SampleLoader,
) -> tuple[str, float | None]:
    """The test that applies and its p-value (None when nothing can test the drop)."""
    if name == run.headline_metric == prod_run.headline_metric:
        test = paired_on_samples(
            samples(run.id),
            samples(prod_run.id),
            resamples=rules.bootstrap_resamples,
            seed=rules.seed,
        )
        if test is not None:
            return test.method, test.p_value
    if (
        ours.ci_low is not None
        and ours.ci_high is not None
        and theirs.ci_low is not None
        and theirs.ci_high is not None
    ):
        return "z-test on CIs", unpaired_from_cis(
            ours.value, ours.ci_low, ours.ci_high, theirs.value, theirs.ci_low, theirs.ci_high
        )
    return "none", None


def thresholds_for(
    task: str, suite: SuiteRequirement, rules: GateRules, metrics: set[str]
) -> dict[str, float]:
    """The thresholds that apply to `task`: its own, then `[gate] safety_thresholds`."""
    own = next((t.thresholds for t in suite.tasks if t.name == task), {})
    found = dict(own)
    for key, value in rules.safety_thresholds.items():
        if key.startswith(f"{task}/"):
            found[key.split("/", 1)[1]] = value
        elif "/" not in key and (
            key in metrics or key.removesuffix("_max").removesuffix("_min") in metrics
        ):
            found[key] = value
    return found


def _safety_reasons(
    results: dict[str, EvalRun], suite: SuiteRequirement, rules: GateRules
) -> list[str]:
    reasons: list[str] = []
    for task, run in results.items():
        if task not in suite.task_names():
            continue
        for key, limit in sorted(thresholds_for(task, suite, rules, set(run.metrics)).items()):
            metric, is_max = _threshold_target(key, run)
            value = run.metrics.get(metric)
            if value is None:
                reasons.append(
                    f"safety metric `{task}/{metric}` is missing (threshold {key} = {limit})"
                )
            elif is_max and value.value > limit:
                reasons.append(
                    f"safety: `{task}/{metric}` = {value.value:.4g} is above the maximum {limit}"
                )
            elif not is_max and value.value < limit:
                reasons.append(
                    f"safety: `{task}/{metric}` = {value.value:.4g} is below the minimum {limit}"
                )
    return reasons


def _threshold_target(key: str, run: EvalRun) -> tuple[str, bool]:
    """`refusal_max` bounds metric `refusal` from above (unless a metric is literally so named)."""
    if key in run.metrics:
        return key, key.endswith("_max")
    if key.endswith("_max"):
        return key.removesuffix("_max"), True
    return key.removesuffix("_min"), False
