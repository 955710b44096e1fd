"""On-disk progress of `chief eval`, so an interrupted run resumes without redoing samples.

Layout: `<project>/.chief/eval-cache/<key>/<task>.jsonl` holds one `SampleRecord` per finished
sample, appended and flushed as each one completes; `<task>.done.json` marks a finished task
with its metrics and, once recorded, its registry run id. `key` hashes the model and the suite
version (and a project's renderer when it is not the base model's own), so a changed suite,
another model or another chat format never reuses stale samples.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from tinker_chief.evals.records import SampleRecord, read_records

if TYPE_CHECKING:
    from tinker_chief.models import RendererChoice


class TaskCache:
    """Finished samples and the finished marker of one (model, suite version, task), and of the
    renderer the prompts were rendered with when a project chose one other than its base
    model's own (another renderer's samples are not this one's; the model's own keeps the key
    it always had)."""

    def __init__(
        self,
        root: Path,
        model: str,
        suite_version: str,
        task: str,
        renderer: RendererChoice | None = None,
    ) -> None:
        keyed = f"{model}\n{suite_version}"
        if renderer is not None and not renderer.is_models_own():
            keyed += f"\n{renderer.renderer}\n{renderer.base_model}"
        key = hashlib.sha256(keyed.encode()).hexdigest()[:16]
        self.dir = root / key
        self.records_path = self.dir / f"{task}.jsonl"
        self.done_path = self.dir / f"{task}.done.json"
        self._lock = threading.Lock()

    def finished_records(self) -> dict[str, SampleRecord]:
        """Samples that completed without a sampling error (errored ones are retried)."""
        if not self.records_path.exists():
            return {}
        return {r.id: r for r in read_records(self.records_path) if r.error is None}

    def append(self, record: SampleRecord) -> None:
        if record.error is not None:
            return
        with self._lock:
            self.dir.mkdir(parents=True, exist_ok=True)
            with self.records_path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(record.to_json(), ensure_ascii=False) + "\n")
                handle.flush()

    def done(self) -> dict[str, object] | None:
        if not self.done_path.exists():
            return None
        try:
            return json.loads(self.done_path.read_text())
        except json.JSONDecodeError:
            return None

    def mark_done(self, payload: Mapping[str, object]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.done_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(payload, indent=2, default=str))
        tmp.replace(self.done_path)
