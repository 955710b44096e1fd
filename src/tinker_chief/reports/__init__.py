"""Reports: `chief report` writes one self-contained HTML file.

Plan summary, learning curves from `metrics.jsonl`, eval comparisons with confidence
intervals, the calibration reliability diagram, safety metrics and registry status, with
every image embedded. Reads the `registry` and run logs; imports no other capability.

Public API:
    write_report(project_dir, output=None) -> Path    (default: <project>/report.html)
    collect(project_dir) -> ReportData; render(data) -> str
"""

from __future__ import annotations

from pathlib import Path

from tinker_chief.reports.collect import ReportData, collect
from tinker_chief.reports.html import render


def write_report(project_dir: str | Path, output: str | Path | None = None) -> Path:
    """Collect the project's plan, runs and registry and write the HTML report atomically."""
    project_dir = Path(project_dir)
    target = Path(output) if output is not None else project_dir / "report.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(target.suffix + ".tmp")
    tmp.write_text(render(collect(project_dir)), encoding="utf-8")
    tmp.replace(target)
    return target


__all__ = ["ReportData", "collect", "render", "write_report"]
