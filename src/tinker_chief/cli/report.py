"""`chief report`: write the project's HTML report (thin: parse, call `reports.write_report`,
print)."""

from __future__ import annotations

from pathlib import Path

import click

from tinker_chief.cli.options import json_option, print_json, project_option

DIFF_SITE = "playground"  # the diffs' static site, beside the report


@click.command(name="report")
@project_option
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="HTML file to write (default: <project>/report.html).",
)
@json_option
def report_command(project_dir: Path, output: Path | None, as_json: bool) -> None:
    """Write one self-contained HTML report: plan, learning curves, eval comparison
    with confidence intervals, calibration, safety and registry status.

    Beside it, playground/ holds the per-sample eval diffs (as `chief playground --export`
    writes them); the eval comparison links to them.

    \b
    Examples:
      chief report
      chief report -p myproj -o /tmp/myproj.html
    """
    from tinker_chief.errors import ChiefError
    from tinker_chief.playground import export_site, load_context
    from tinker_chief.reports import write_report

    target = output if output is not None else project_dir / "report.html"
    problem: ChiefError | None = None
    try:
        export_site(load_context(project_dir), target.parent / DIFF_SITE)
        diff_site: str | None = DIFF_SITE
    except ChiefError as exc:  # the report itself still gets written, without the links
        problem, diff_site = exc, None
    path = write_report(project_dir, output, diff_site=diff_site)  # a broken project: its one error
    if problem is not None:
        click.echo(f"warning: no per-sample diffs beside the report: {problem}", err=True)
    if as_json:
        print_json({"report": str(path)})
        return
    click.echo(f"report written: {path}")
