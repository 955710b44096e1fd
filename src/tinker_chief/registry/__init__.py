"""The model registry and its governance rules: `chief registry`, `compare`, `promote`.

A durable SQLite store (versioned schema, WAL, one transaction per change) of models with
lineage, eval runs with per-sample outcomes, status history and an audit log; the promotion
gate that refuses a worse model; and the generated `MODEL_REGISTRY.md`. A pure store: it
imports no other capability of tinker-chief.

    from tinker_chief.registry import Registry, MetricValue, SampleOutcome
    with Registry.open() as reg:                      # .chief/registry.db or $CHIEF_REGISTRY
        m = reg.register_model("bot", base_model="SmolLM2-135M-Instruct-Q4_1", recipe="sl")
        reg.record_eval(m.ref, suite_name="chat", suite_version=suite.version, task="qa",
                        metrics=[MetricValue("accuracy", 0.8, 0.7, 0.9, 100)],
                        samples=[SampleOutcome("q1", 1.0, True)], headline_metric="accuracy")
        reg.promote(m.ref, "prod", suite=SuiteRequirement.from_suite(suite), rules=GateRules())
"""

from tinker_chief.registry._compare import Comparison, MetricRow
from tinker_chief.registry._export import _code as markdown_code
from tinker_chief.registry._export import _text as markdown_text
from tinker_chief.registry._gate import GateReport
from tinker_chief.registry._records import (
    NOT_SCORED,
    AuditEntry,
    DataFields,
    DataFile,
    DataFileFields,
    DataSummary,
    EvalRun,
    Export,
    LoraFields,
    LoraSpec,
    MetricValue,
    ModelRecord,
    SampleOutcome,
    Selection,
    StatusChange,
    Usage,
)
from tinker_chief.registry._scrub import scrub
from tinker_chief.registry._spend import (
    Deletable,
    SessionRow,
    Weights,
    describe_billed,
    weight_paths,
)
from tinker_chief.registry._store import DEFAULT_PATH, Registry, default_path
from tinker_chief.registry.rules import GateRules, SuiteLike, SuiteRequirement, TaskRequirement
from tinker_chief.registry.stats import PairedTest, mcnemar, paired_bootstrap

__all__ = [
    "DEFAULT_PATH",
    "NOT_SCORED",
    "AuditEntry",
    "Comparison",
    "DataFields",
    "DataFile",
    "DataFileFields",
    "DataSummary",
    "Deletable",
    "EvalRun",
    "Export",
    "GateReport",
    "GateRules",
    "LoraFields",
    "LoraSpec",
    "MetricRow",
    "MetricValue",
    "ModelRecord",
    "PairedTest",
    "Registry",
    "SampleOutcome",
    "Selection",
    "SessionRow",
    "StatusChange",
    "SuiteLike",
    "SuiteRequirement",
    "TaskRequirement",
    "Usage",
    "Weights",
    "default_path",
    "describe_billed",
    "markdown_code",
    "markdown_text",
    "mcnemar",
    "paired_bootstrap",
    "scrub",
    "weight_paths",
]
