"""Evaluation in three layers: `chief eval`, `chief eval-offline`, Inspect AI integration.

Owns the eval-suite schema (`suite.py`), graders, evaluators usable inline by cookbook
training loops, the Inspect AI model provider and tasks, the safety and calibration suites,
the code-execution sandbox, and the statistics (Wilson and bootstrap intervals) every result
carries. Reaches models only through the `tinker` SDK; records results in the `registry`.

Names are imported lazily so `import tinker_chief.evals` stays light (no torch, no inspect_ai).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "EvalSuite": "tinker_chief.evals.suite",
    "EvalTask": "tinker_chief.evals.suite",
    "EvalSettings": "tinker_chief.evals.suite",
    "ConversationNLLEvaluator": "tinker_chief.evals.evaluators",
    "GenerativeAccuracyEvaluator": "tinker_chief.evals.evaluators",
    "sampler_nll_evaluator": "tinker_chief.evals.evaluators",
    "make_grader": "tinker_chief.evals.graders",
    "GenerationSettings": "tinker_chief.evals.model_sampler",
    "ModelSampler": "tinker_chief.evals.model_sampler",
    "OfflineConfig": "tinker_chief.evals.offline",
    "run_offline": "tinker_chief.evals.offline",
    "wilson_interval": "tinker_chief.evals.intervals",
    "bootstrap_mean": "tinker_chief.evals.intervals",
    "run_suite": "tinker_chief.evals.runner",
    "SuiteRunResult": "tinker_chief.evals.runner",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tinker_chief.evals' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
