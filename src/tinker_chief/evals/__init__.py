"""Evaluation in three layers: `chief eval`, `chief eval-offline`, Inspect AI integration.

Owns the eval-suite schema (`suite.py`), graders, evaluators usable inline by cookbook
training loops, the Inspect AI model provider and tasks, the safety and calibration suites,
the code-execution sandbox, and the statistics (Wilson and bootstrap intervals) every result
carries. Reaches models only through the `tinker` SDK; records results in the `registry`.

Names are imported lazily so `import tinker_chief.evals` stays light (no torch, no inspect_ai);
type checkers see them imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tinker_chief.lazy_exports import lazy_attribute

if TYPE_CHECKING:
    from tinker_chief.evals.evaluators import (
        ConversationNLLEvaluator,
        GenerativeAccuracyEvaluator,
        sampler_nll_evaluator,
    )
    from tinker_chief.evals.graders import make_grader
    from tinker_chief.evals.intervals import bootstrap_mean, wilson_interval
    from tinker_chief.evals.model_sampler import GenerationSettings, ModelSampler
    from tinker_chief.evals.offline import OfflineConfig, run_offline
    from tinker_chief.evals.runner import SuiteRunResult, run_suite
    from tinker_chief.evals.suite import EvalSettings, EvalSuite, EvalTask

_EXPORTS = {
    "ConversationNLLEvaluator": "tinker_chief.evals.evaluators",
    "EvalSettings": "tinker_chief.evals.suite",
    "EvalSuite": "tinker_chief.evals.suite",
    "EvalTask": "tinker_chief.evals.suite",
    "GenerationSettings": "tinker_chief.evals.model_sampler",
    "GenerativeAccuracyEvaluator": "tinker_chief.evals.evaluators",
    "ModelSampler": "tinker_chief.evals.model_sampler",
    "OfflineConfig": "tinker_chief.evals.offline",
    "SuiteRunResult": "tinker_chief.evals.runner",
    "bootstrap_mean": "tinker_chief.evals.intervals",
    "make_grader": "tinker_chief.evals.graders",
    "run_offline": "tinker_chief.evals.offline",
    "run_suite": "tinker_chief.evals.runner",
    "sampler_nll_evaluator": "tinker_chief.evals.evaluators",
    "wilson_interval": "tinker_chief.evals.intervals",
}

__all__ = [
    "ConversationNLLEvaluator",
    "EvalSettings",
    "EvalSuite",
    "EvalTask",
    "GenerationSettings",
    "GenerativeAccuracyEvaluator",
    "ModelSampler",
    "OfflineConfig",
    "SuiteRunResult",
    "bootstrap_mean",
    "make_grader",
    "run_offline",
    "run_suite",
    "sampler_nll_evaluator",
    "wilson_interval",
]


__getattr__ = lazy_attribute(__name__, _EXPORTS)
