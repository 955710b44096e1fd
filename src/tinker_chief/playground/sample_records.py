"""The per-sample records behind an eval result: what each sample asked, answered, and its verdict.

chief keeps them in three places, read here without running anything:
- `chief eval`'s jsonl, safety and calibration tasks: the eval cache
  (`.chief/eval-cache/<model + suite version>/<task>.jsonl`, one `SampleRecord` per sample);
- Inspect tasks: the run's Inspect log (`log_location`), read with `inspect_ai.log`;
- `chief eval-offline`: `samples.jsonl` beside its `summary.json` under `.chief/eval-offline/`.
The registry's per-sample outcomes (id, score, pass/fail) are what the paired test counts; these
records add the prompt, the answer, the target and the grader's verdict. A run whose records are
gone (cache cleared, log moved) still diffs on its outcomes, and says what is missing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tinker_chief.errors import ChiefError
from tinker_chief.evals.cache import TaskCache
from tinker_chief.evals.records import SampleRecord, read_records
from tinker_chief.files import read_json_object
from tinker_chief.paths import ProjectPaths

if TYPE_CHECKING:
    from tinker_chief.models import RendererChoice
    from tinker_chief.registry import EvalRun, ModelRecord

OFFLINE_PREFIX = "offline:"  # how an eval-offline data file is named among the diff's tasks


@dataclass(frozen=True)
class SampleDetail:
    prompt: list[dict[str, str]]
    target: str | None
    response: str | None
    correct: bool | None
    answer: str | None = None
    explanation: str = ""
    error: str | None = None

    def to_json(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class RunRecords:
    """One side's records by sample id, where they were read, or why there are none."""

    details: dict[str, SampleDetail] = field(default_factory=dict)
    source: str | None = None
    missing: str | None = None


def from_record(record: SampleRecord) -> SampleDetail:
    return SampleDetail(
        prompt=[
            {"role": str(m.get("role")), "content": str(m.get("content"))} for m in record.prompt
        ],
        target=record.target,
        response=record.response,
        correct=record.correct,
        answer=record.answer,
        explanation=record.explanation,
        error=record.error,
    )


def _from_file(path: Path) -> RunRecords:
    records = {r.id: from_record(r) for r in read_records(path)}  # a resumed run's later line wins
    return RunRecords(records, str(path))


def registry_run_records(
    paths: ProjectPaths, model: ModelRecord, run: EvalRun, renderer: RendererChoice | None = None
) -> RunRecords:
    """The records of registry eval run `run` of `model` (`renderer`: the project's)."""
    if run.log_location:
        return inspect_records(run.log_location)
    task = run.settings.get("task")
    if isinstance(task, dict) and task.get("kind") == "nll":
        return RunRecords(
            missing="an nll task keeps no per-sample text, only each conversation's NLL"
        )
    # The key `chief eval` cached the run under: the sampled target, the suite version and the
    # project's renderer when it is not the model's own (a run before it changed: the plain key).
    target = model.tinker_path or model.base_model
    renderers = [renderer, None] if renderer is not None else [None]
    keys = [TaskCache(paths.eval_cache, target, run.suite_version, run.task, r) for r in renderers]
    cache = next((c for c in keys if c.records_path.is_file()), keys[-1])
    if not cache.records_path.is_file():
        return RunRecords(
            missing=f"no per-sample records at {cache.records_path} (was the eval cache cleared?)"
        )
    return _from_file(cache.records_path)


def _text(content: object) -> str:
    return content if isinstance(content, str) else str(getattr(content, "text", content))


def inspect_records(location: str) -> RunRecords:
    """Samples of an Inspect log, keyed as the registry recorded their outcomes."""
    try:
        from inspect_ai.log import read_eval_log
        from inspect_ai.scorer import value_to_float

        from tinker_chief.evals.inspect_runner import sample_key

        log = read_eval_log(location)
    except Exception as exc:  # a moved, partial or foreign log: the diff goes on without text
        return RunRecords(
            missing=f"cannot read the Inspect log {location}: {type(exc).__name__}: {exc}"
        )
    scores = log.results.scores if log.results else []
    scorer = scores[0].name if scores else None
    to_float = value_to_float()
    details = {}
    for sample in log.samples or []:
        score = (sample.scores or {}).get(scorer) if scorer else None
        value = to_float(score.value) if score is not None else None
        prompt = (
            [{"role": "user", "content": sample.input}]
            if isinstance(sample.input, str)
            else [{"role": str(m.role), "content": _text(m.text)} for m in sample.input]
        )
        target = sample.target if isinstance(sample.target, str) else " | ".join(sample.target)
        details[sample_key(sample)] = SampleDetail(
            prompt=prompt,
            target=target,
            response=sample.output.completion if sample.output else None,
            correct=None if value not in (0.0, 1.0) else value == 1.0,
            answer=None if score is None or score.answer is None else str(score.answer),
            explanation=""
            if score is None or score.explanation is None
            else str(score.explanation),
            error=sample.error.message if sample.error else None,
        )
    return RunRecords(details, location)


@dataclass(frozen=True)
class OfflineOutput:
    """One `chief eval-offline` output directory (its name is its ref in the diff)."""

    name: str
    model: str
    data: str
    grader: str
    directory: Path

    @property
    def task(self) -> str:
        return OFFLINE_PREFIX + self.data


def offline_results(paths: ProjectPaths) -> list[OfflineOutput]:
    """Every eval-offline output of the project with a readable summary, by directory name."""
    root = paths.eval_offline
    found = []
    for summary in sorted(root.glob("*/summary.json")) if root.is_dir() else []:
        try:
            data = read_json_object(summary)
        except ChiefError:
            continue  # a torn summary: that output is simply not offered
        if (summary.parent / "samples.jsonl").is_file():
            found.append(
                OfflineOutput(
                    summary.parent.name,
                    str(data.get("model", "?")),
                    str(data.get("data", "?")),
                    str(data.get("grader", "?")),
                    summary.parent,
                )
            )
    return found


def offline_records(result: OfflineOutput) -> RunRecords:
    return _from_file(result.directory / "samples.jsonl")
