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


def write_report(
    project_dir: str | Path,
    output: str | Path | None = None,
    *,
    diff_site: str | None = None,
) -> Path:
    """Collect the project's plan, runs and registry and write the HTML report atomically.
    `diff_site`: where the playground's static export lies, relative to the report (`chief report`
    writes one there): the eval comparison then links each pair of versions to its diff."""
    project_dir = Path(project_dir)
    target = Path(output) if output is not None else project_dir / "report.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(target.suffix + ".tmp")
    data = collect(project_dir)
    data.diff_site = diff_site
    tmp.write_text(render(data), encoding="utf-8")
    tmp.replace(target)
    return target


__all__ = ["ReportData", "collect", "render", "write_report"]
