"""What evaluating one model with the project's eval suite will cost: prefill and sample tokens.

Per suite task, from the suite's own settings and data, rendered with the renderer the plan
counts with (so prompts are the tokens `chief eval` sends):
- `jsonl`: the samples after `shots` (each prompt carries the shot examples) up to `limit`;
  prefill = each rendered prompt once, sample <= samples x `max_tokens` (an upper bound: an
  answer may stop early).
- `nll`: each held-out conversation prefilled whole (`compute_logprobs`, which samples one
  token: the SDK sends it as a sample of `max_tokens=1`).
- `inspect`: `limit` samples x `max_tokens` sampled (upper bound); the benchmark's prompts are
  Inspect's dataset, not on this machine, so their prefill is not counted and the task says so.
- `safety`: each shipped prompt (after the per-category `limit`) prefilled once, sample <= each x
  `max_tokens`.
- `calibration`: each question scored by `compute_logprobs` once per answer letter, so prefill =
  (prompt + 1 letter token) x choices, and one sampled token per choice.
A judge model's calls (LLM-judge graders, a safety refusal judge) are not counted; the plan
says which tasks have one. Nothing here samples or needs a backend.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from tinker_chief.errors import ChiefError
from tinker_chief.evals.suite import (
    EvalSuite,
    EvalTask,
    builtin_requests,
    published_task_problem,
)
from tinker_chief.jsonl import read_jsonl_objects
from tinker_chief.models.renderers import cookbook_messages

if TYPE_CHECKING:
    from tinker_cookbook.renderers import Message, Renderer


class EvalTaskTokens(BaseModel):
    task: str
    kind: str
    samples: int | None
    prefill_tokens: int | None = Field(None, description="None: not counted (see method)")
    sample_tokens: int | None = Field(None, description="Upper bound: samples x max_tokens")
    method: str
    problem: str | None = Field(
        None,
        description="Why `chief eval` cannot run this task as it stands (data it cannot read, an "
        "Inspect Evals task the installed package lacks)",
    )


class EvalSamplingEstimate(BaseModel):
    """Tokens one run of the whole suite prefills and samples (sums over the tasks estimated)."""

    tasks: list[EvalTaskTokens]
    prefill_tokens: int
    sample_tokens: int
    not_counted: list[str] = Field(
        default_factory=list, description="What the sums leave out, and why"
    )


def _prompt(value: Mapping[str, object]) -> list[Message] | None:
    """A jsonl eval line's chat as `chief eval` renders it (system first), or None when
    unreadable."""
    messages = value.get("messages")
    prompt, system = value.get("input"), value.get("system")
    if messages is None and isinstance(prompt, str):
        messages = [{"role": "user", "content": prompt}]
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        return None
    if isinstance(system, str):
        messages = [{"role": "system", "content": system}, *messages]
    return cookbook_messages(messages)


def _lines(path: Path) -> list[dict[str, object]]:
    return [line.value for line in read_jsonl_objects(path) if isinstance(line.value, dict)]


def _jsonl(task: EvalTask, path: Path, renderer: Renderer) -> EvalTaskTokens:
    s = task.settings
    rows = _lines(path)
    shots = [
        m
        for row in rows[: s.shots]
        for m in (
            (_prompt(row) or [])[-1:]
            + [{"role": "assistant", "content": str(row.get("output", row.get("target", "")))}]
        )
    ]
    prompts = [p for p in (_prompt(row) for row in rows[s.shots :]) if p][: s.limit]
    prefill = sum(renderer.build_generation_prompt([*shots, *p]).length for p in prompts)
    how = (
        f"{len(prompts)} prompts of {task.data} rendered with the shot examples"
        f"{' (the chain-of-thought instruction not counted)' if s.chain_of_thought else ''}; "
        f"sampled <= {len(prompts)} x max_tokens {s.max_tokens}"
    )
    if task.grader.startswith("llm_judge"):
        how += f"; the judge's calls ({task.judge_model or 'the model itself'}) are not counted"
    return EvalTaskTokens(
        task=task.name,
        kind=task.kind,
        samples=len(prompts),
        prefill_tokens=prefill,
        sample_tokens=len(prompts) * s.max_tokens,
        method=how,
    )


def _nll(task: EvalTask, path: Path, renderer: Renderer) -> EvalTaskTokens:
    conversations = []
    for row in _lines(path)[: task.settings.limit]:
        chat, output = _prompt(row), row.get("output")
        if chat is not None and row.get("messages") is None and isinstance(output, str):
            chat = [*chat, {"role": "assistant", "content": output}]
        if chat:
            conversations.append(chat)
    prefill = sum(renderer.build_supervised_example(chat)[0].length for chat in conversations)
    return EvalTaskTokens(
        task=task.name,
        kind=task.kind,
        samples=len(conversations),
        prefill_tokens=prefill,
        sample_tokens=len(conversations),
        method=f"{len(conversations)} conversations of {task.data} prefilled whole, one token "
        "sampled each",
    )


def _builtin(task: EvalTask, path: Path | None, renderer: Renderer) -> EvalTaskTokens | None:
    requests = builtin_requests(task, str(path) if path else None)
    if requests is None:
        return None
    s, n = task.settings, len(requests)
    if task.kind == "calibration":
        prefill = sum(
            (renderer.build_generation_prompt(cookbook_messages(chat)).length + 1) * options
            for chat, options in requests
        )
        return EvalTaskTokens(
            task=task.name,
            kind=task.kind,
            samples=n,
            prefill_tokens=prefill,
            sample_tokens=sum(options for _chat, options in requests),
            method=f"{n} questions, each prompt + its answer letter (1 token) scored once per "
            "choice, one token sampled each time",
        )
    prefill = sum(
        renderer.build_generation_prompt(cookbook_messages(chat)).length
        for chat, _options in requests
    )
    limit = f" (limit {s.limit} per category)" if s.limit else ""
    how = f"{n} shipped prompts{limit}; sampled <= {n} x max_tokens {s.max_tokens}"
    if task.judge_model:
        how += f"; the refusal judge's calls ({task.judge_model}) are not counted"
    return EvalTaskTokens(
        task=task.name,
        kind=task.kind,
        samples=n,
        prefill_tokens=prefill,
        sample_tokens=n * s.max_tokens,
        method=how,
    )


def _task_tokens(task: EvalTask, root: Path, renderer: Renderer) -> EvalTaskTokens:
    s = task.settings
    unknown = published_task_problem(task.inspect_task or "") if task.kind == "inspect" else None
    if unknown:
        return EvalTaskTokens(
            task=task.name,
            kind=task.kind,
            samples=None,
            method=f"not estimated: {unknown}",
            problem=unknown,
        )
    path = (
        (Path(task.data) if Path(task.data).is_absolute() else root / task.data)
        if task.data
        else None
    )
    try:
        if task.kind in ("jsonl", "nll") and path is not None:
            return (_jsonl if task.kind == "jsonl" else _nll)(task, path, renderer)
        counted = _builtin(task, path, renderer)
    except ChiefError as exc:
        # The plan has no count for it, and warns: `chief eval` would fail on this task.
        return EvalTaskTokens(
            task=task.name,
            kind=task.kind,
            samples=None,
            method=f"not estimated: {exc}",
            problem=str(exc),
        )
    if counted is not None:
        return counted
    if task.kind == "inspect" and s.limit:
        return EvalTaskTokens(
            task=task.name,
            kind=task.kind,
            samples=s.limit,
            sample_tokens=s.limit * s.max_tokens,
            method=f"limit {s.limit} x max_tokens {s.max_tokens} sampled (upper bound); prompts "
            "are the benchmark's dataset (fetched by Inspect), not counted",
        )
    why = (
        "no limit set, so the benchmark's size is unknown here"
        if task.kind == "inspect"
        else "no data file"
    )
    return EvalTaskTokens(
        task=task.name, kind=task.kind, samples=s.limit, method=f"not estimated: {why}"
    )


def estimate_eval_sampling(
    suite: EvalSuite, project_root: Path, renderer: Renderer
) -> EvalSamplingEstimate:
    """Prefill and sample tokens of one `chief eval` of the whole suite on one model."""
    tasks = [_task_tokens(task, project_root, renderer) for task in suite.tasks]
    not_counted = [
        f"{t.task}: its prompts (the benchmark's dataset, fetched by Inspect)"
        if t.sample_tokens is not None
        else f"{t.task}: all its tokens ({t.method})"
        for t in tasks
        if t.prefill_tokens is None
    ]
    return EvalSamplingEstimate(
        tasks=tasks,
        prefill_tokens=sum(t.prefill_tokens or 0 for t in tasks),
        sample_tokens=sum(t.sample_tokens or 0 for t in tasks),
        not_counted=not_counted,
    )
