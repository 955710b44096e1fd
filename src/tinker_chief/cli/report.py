"""`chief report`: write the project's HTML report (thin: parse, call `reports.write_report`, print)."""

from __future__ import annotations

from pathlib import Path

import click

from tinker_chief.cli.options import json_option, print_json, project_option


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

    \b
    Examples:
      chief report
      chief report -p myproj -o /tmp/myproj.html
    """
    from tinker_chief.reports import write_report

    path = write_report(project_dir, output)
    if as_json:
        print_json({"report": str(path)})
        return
    click.echo(f"report written: {path}")
