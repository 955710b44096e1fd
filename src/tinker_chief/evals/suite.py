"""The eval-suite schema: what a project agrees to evaluate every checkpoint on.

Written by the planner into `chief.toml` (one template per use case), run by `chief eval`,
and versioned by a hash of its definition so the registry can tell when recorded results are
stale. Every setting that changes a score (shots, chain-of-thought, temperature, max tokens,
limit, grader, task version) is part of the definition and therefore of the version.
"""

from __future__ import annotations

import ast
import difflib
import hashlib
import importlib.metadata
import importlib.util
import json
from functools import cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tinker_chief.errors import ConfigurationError

PUBLISHED_PREFIX = "inspect_evals/"  # a suite task's `inspect_task` naming an Inspect Evals task

EvalLayer = Literal["training", "benchmark", "product", "safety", "calibration"]
EvalKind = Literal["nll", "jsonl", "inspect", "safety", "calibration"]


class EvalSettings(BaseModel):
    """Generation and scoring settings recorded with every result."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    max_tokens: int = Field(256, ge=1, description="Most new tokens per answer.")
    temperature: float = Field(0.0, ge=0.0, description="0 means greedy decoding.")
    shots: int = Field(0, ge=0, description="Few-shot examples in the prompt.")
    chain_of_thought: bool = Field(False, description="Ask the model to reason before answering.")
    limit: int | None = Field(None, ge=1, description="Evaluate only the first N samples.")
    seed: int = Field(0, description="Sampling seed.")


class EvalTask(BaseModel):
    """One task of a suite.

    `kind` says how it runs: `nll` (held-out negative log-likelihood on conversations),
    `jsonl` (generate on `{"input","output"}` lines and grade), `inspect` (an Inspect AI task,
    e.g. `inspect_evals/gsm8k`), `safety` and `calibration` (the suites shipped with chief).
    """

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    name: str = Field(..., pattern=r"^[A-Za-z0-9_.\-]+$", description="Unique within the suite.")
    layer: EvalLayer
    kind: EvalKind
    description: str = ""
    data: str | None = Field(None, description="JSONL file, relative to the project directory.")
    inspect_task: str | None = Field(None, description="Inspect task name, for kind=inspect.")
    task_version: str | None = Field(None, description="Version of the benchmark/task definition.")
    grader: str = Field("exact", description="Grader name (see evals.graders).")
    judge_model: str | None = Field(None, description="Model for LLM-judge graders.")
    settings: EvalSettings = Field(default_factory=EvalSettings)
    thresholds: dict[str, float] = Field(
        default_factory=dict,
        description="Minimum (or, for names ending in _max, maximum) values the gate enforces.",
    )
    headline_metric: str = Field("accuracy", description="The metric compared across models.")

    @field_validator("grader")
    @classmethod
    def _buildable_grader(cls, spec: str) -> str:
        return checked_grader(spec)

    @model_validator(mode="after")
    def _check_kind_fields(self) -> EvalTask:
        if self.kind == "inspect" and not self.inspect_task:
            raise ValueError(f"task `{self.name}`: kind=inspect needs `inspect_task`")
        if self.kind in ("jsonl", "nll") and not self.data:
            raise ValueError(f"task `{self.name}`: kind={self.kind} needs `data`")
        return self


class EvalSuite(BaseModel):
    """A named list of tasks; `version` changes whenever any result-affecting field does."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    name: str = Field(..., min_length=1)
    # May be empty (a project that only trains); the gate then refuses prod (registry/_gate.py).
    tasks: list[EvalTask]

    @model_validator(mode="after")
    def _unique_names(self) -> EvalSuite:
        names = [task.name for task in self.tasks]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"suite `{self.name}`: duplicate task names {duplicates}")
        return self

    @property
    def version(self) -> str:
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    def task(self, name: str) -> EvalTask:
        for task in self.tasks:
            if task.name == name:
                return task
        raise KeyError(name)


def builtin_requests(
    task: EvalTask, data: str | None = None
) -> list[tuple[list[dict[str, str]], int]] | None:
    """What a `safety` or `calibration` task sends, for the planner's cost estimate (it reads no
    evals internals): (chat, options) per item after `limit`. options = 0: one sampled answer
    (safety); n > 0: the chat scored once per answer letter with `compute_logprobs` (calibration).
    `data`: the calibration questions file (None: the shipped set). None for other kinds."""
    if task.kind == "safety":
        from tinker_chief.evals.safety import limit_per_category, safety_prompts

        return [
            (p.as_sample().messages, 0)
            for p in limit_per_category(safety_prompts(), task.settings.limit)
        ]
    if task.kind == "calibration":
        from tinker_chief.evals.calibration import load_questions

        return [(q.messages(), len(q.choices)) for q in load_questions(data)[: task.settings.limit]]
    return None


def checked_grader(spec: str) -> str:
    """`spec` when a grader can be built from it (its name, options and their values), else a
    `ValueError` saying why: for a chief.toml field validator, so a typo is caught when the file
    is read, before a run or an eval starts."""
    from tinker_chief.evals.graders.factory import check_grader_spec

    try:
        check_grader_spec(spec)
    except ConfigurationError as exc:
        raise ValueError(f"a grader spec chief can build ({exc})") from None
    return spec


@cache
def _published_task_names() -> frozenset[str] | None:
    """The task names the installed Inspect Evals registers, read from its registry module's
    source (it imports every task by name), so checking a name imports none of the benchmarks.
    None when that cannot be told: the package is not installed or keeps its registry elsewhere."""
    spec = importlib.util.find_spec("inspect_evals._registry")
    if spec is None or spec.origin is None:
        return None
    try:
        with open(spec.origin, encoding="utf-8") as handle:
            tree = ast.parse(handle.read())
    except (OSError, SyntaxError, ValueError):
        return None
    names = frozenset(
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    )
    return names or None


def published_task_problem(ref: str) -> str | None:
    """Why `ref` (`inspect_evals/NAME`) names no task of the installed Inspect Evals, with near
    matches; None when it names one, is not such a ref, or the installed registry cannot be read
    (then `chief eval` finds out)."""
    if not ref.startswith(PUBLISHED_PREFIX):
        return None
    names = _published_task_names()
    name = ref.removeprefix(PUBLISHED_PREFIX)
    if names is None or name in names:
        return None
    try:
        version = f" ({importlib.metadata.version('inspect-evals')})"
    except importlib.metadata.PackageNotFoundError:  # importable without metadata (a source tree)
        version = ""
    near = difflib.get_close_matches(name, sorted(names), n=3)
    hint = f"; did you mean {', '.join(PUBLISHED_PREFIX + n for n in near)}?" if near else ""
    return f"the installed Inspect Evals{version} has no task `{name}`{hint}"
