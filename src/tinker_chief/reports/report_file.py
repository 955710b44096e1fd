"""`write_report`: the project's report as one HTML file, written atomically."""

from __future__ import annotations

from pathlib import Path

from tinker_chief.reports.collect import collect
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
