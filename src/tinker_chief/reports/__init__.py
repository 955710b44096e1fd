"""Reports: `chief report` writes one self-contained HTML file.

Owns the report: plan summary, learning curves from `metrics.jsonl`, eval comparisons with
confidence intervals, the calibration reliability diagram, safety metrics and registry status,
with every image embedded. Reads the `registry` and run logs; imports no other capability.

Public API:
    write_report(project_dir, output=None) -> Path    (default: <project>/report.html)
    collect(project_dir) -> ReportData; render(data) -> str
"""

from tinker_chief.reports.collect import ReportData, collect
from tinker_chief.reports.html import render
from tinker_chief.reports.report_file import write_report

__all__ = ["ReportData", "collect", "render", "write_report"]
