"""Per-sample records and the summary computed from them.

Every graded sample becomes a `SampleRecord` (prompt, response, target, verdict, error) written
as one JSONL line, so a result can be audited, resumed and compared sample by sample. The
summary is derived from records only: accuracy over *scored* samples with its Wilson interval,
plus counts of unscored samples (grader could not decide) and errors (sampling failed).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypedDict

from tinker_chief.evals.intervals import wilson_interval


@dataclass
class SampleRecord:
    id: str
    prompt: list[dict[str, str]]
    target: str
    response: str | None = None
    correct: bool | None = None
    answer: str | None = None
    explanation: str = ""
    error: str | None = None
    extra: dict[str, object] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> SampleRecord:
        """A record from its JSON line (unchecked: a line that does not fit raises `TypeError`)."""
        return cls(**{k: value[k] for k in cls.__dataclass_fields__ if k in value})

    @property
    def outcome(self) -> float | None:
        """1.0/0.0 for a scored sample, None otherwise (what paired comparison uses)."""
        return None if self.correct is None else float(self.correct)


class Metric(TypedDict, total=False):
    """One recorded metric: its value, 95% interval and the samples behind it. Every key is
    written; read back from a cache, a key may be missing (so `.get(name, {})` type-checks)."""

    value: float
    ci_low: float | None
    ci_high: float | None
    n: int | None


class Summary(TypedDict):
    """What `summarize` computes from records (the keys `chief eval-offline` reports)."""

    accuracy: float
    n: int
    correct: int
    ci_low: float
    ci_high: float
    unscored: int
    errors: int
    total: int


def summarize(records: list[SampleRecord]) -> Summary:
    """accuracy, n (scored), ci_low/ci_high (95% Wilson), unscored, errors, total."""
    scored = [r for r in records if r.correct is not None]
    correct = sum(1 for r in scored if r.correct)
    interval = wilson_interval(correct, len(scored))
    return {
        "accuracy": interval.value,
        "n": len(scored),
        "correct": correct,
        "ci_low": interval.low,
        "ci_high": interval.high,
        "unscored": sum(1 for r in records if r.correct is None and r.error is None),
        "errors": sum(1 for r in records if r.error is not None),
        "total": len(records),
    }


def outcomes_by_id(records: list[SampleRecord]) -> dict[str, float]:
    return {r.id: r.outcome for r in records if r.outcome is not None}


def write_records(path: Path, records: list[SampleRecord]) -> None:
    """Write atomically (temp file + rename) so a crash never leaves a half file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record.to_json(), ensure_ascii=False) + "\n")
    tmp.replace(path)


def read_records(path: Path) -> list[SampleRecord]:
    records = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                try:
                    records.append(SampleRecord.from_json(json.loads(line)))
                except (json.JSONDecodeError, TypeError):
                    continue  # a torn last line from a crash: that sample is simply redone
    return records
