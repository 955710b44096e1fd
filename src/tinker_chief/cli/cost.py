"""Money and checkpoints on the command line: `chief cost`, budgets' flags, gc's report.

`ProjectBackend` connects to the project's backend (`Workspace.backend_choice`, as `chief train`
chooses) only when a command must reach it: promoting a version whose weights expire,
retiring one, `chief registry gc`, `chief cost`. A local engine started for it stops again.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

import click
from rich.console import Console
from rich.markup import escape

from tinker_chief.cli.options import F, backend_options, json_option, project_option

if TYPE_CHECKING:  # imported lazily at run time so `chief --help` stays fast
    import tinker

    from tinker_chief.connection import Connection
    from tinker_chief.planning import Project
    from tinker_chief.registry import Registry
    from tinker_chief.spend.billing import Item
    from tinker_chief.spend.budget import Tokens
    from tinker_chief.spend.lifecycle import GcReport


class ProjectBackend:
    """The project's backend, connected on first use and closed on exit."""

    def __init__(self, project: Project, backend: str | None, base_url: str | None) -> None:
        self.project, self.backend, self.base_url = project, backend, base_url
        self._connection: Connection | None = None

    def connection(self) -> Connection:
        if self._connection is None:
            from tinker_chief.workspace import Workspace, connect_at

            workspace = Workspace.of(self.project)
            choice = workspace.backend_choice(self.backend, self.base_url)
            self._connection = connect_at(
                workspace.root, choice, []
            )  # no model to check: REST only
        return self._connection

    def rest(self) -> tinker.RestClient:
        return self.connection().rest_client()

    def admin(self) -> tinker.AdminClient:
        return self.connection().admin_client()

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def __enter__(self) -> ProjectBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def megabytes(size: int) -> str:
    return f"{size / 1e6:,.1f} MB"


def print_gc(report: GcReport, console: Console) -> None:
    """`chief registry gc`'s report: what it deleted (or would), the bytes and money freed."""
    from rich.table import Table

    verb = "would free" if report.dry_run else "freed"
    table = Table(title="Weights to delete" if report.dry_run else "Weights deleted")
    for column in ("model", "why", "bytes", "outcome"):
        table.add_column(column, overflow="fold")
    for item in report.items:
        table.add_row(
            *(
                escape(str(v))
                for v in (item.ref, item.why, megabytes(item.size_bytes), item.outcome)
            )
        )
    console.print(table)
    monthly = report.monthly_usd_freed
    cost = (
        f"${monthly:,.4f}/month"
        if monthly is not None
        else f"monthly cost unknown: {report.rate_note}"
    )
    console.print(escape(f"{verb} {megabytes(report.bytes_freed)} of checkpoints; storage {cost}"))
    kept = ", ".join(f"{ref} ({why})" for ref, why in sorted(report.protected.items())) or "none"
    console.print(escape(f"kept: {kept}"), soft_wrap=True)
    for note in report.notes:
        console.print(f"[yellow]warning:[/yellow] {escape(note)}")
    for item in report.failed:
        console.print(f"[red]not deleted:[/red] {escape(item.ref)}: {escape(item.outcome)}")


def max_usd_option(function: F) -> F:
    """`--max-usd AMOUNT`: this command's dollar budget, replacing `[budget] max_usd`."""
    return click.option(
        "--max-usd",
        default=None,
        metavar="AMOUNT",
        help="Dollar budget for the project's spend (replaces [budget] max_usd): refuse to "
        "start past it, and stop before crossing it: training runs at a checkpoint, evals "
        "between tasks (exit code 6).",
    )(function)


def _since(value: str | None) -> str | None:
    """`--since YYYY-MM-DD` as the registry's UTC timestamp text (one line if it is no date)."""
    if value is None:
        return None
    from datetime import date

    from tinker_chief.errors import ConfigurationError

    try:
        return date.fromisoformat(value).isoformat() + "T00:00:00Z"
    except ValueError:
        raise ConfigurationError(f"--since: expected a date YYYY-MM-DD, got {value!r}") from None


def _chosen(
    found: list[Item], registry: Registry, model: str | None, sweep: str | None, since: str | None
) -> list[Item]:
    if model is not None:
        record = registry.get_model(model)
        found = [i for i in found if record.ref in i.models]
    if sweep is not None:
        found = [i for i in found if i.sweep == sweep]
        if not found:
            from tinker_chief.errors import ConfigurationError

            raise ConfigurationError(
                f"--sweep {sweep}: no training run of that sweep in the registry"
            )
    if since is not None:
        found = [i for i in found if i.at >= since]
    return found


def _cell(tokens: Tokens | None, note: str = "") -> str:
    return "—" if tokens is None else tokens.text() + note


def print_cost(found: list[Item], table_source: str, billing_note: str, console: Console) -> None:
    from rich.table import Table

    table = Table(title="Spend: the plan's estimate, chief's count, the backend's bill")
    for column in ("item", "plan estimate", "counted by chief", "billed", "billed - counted"):
        table.add_column(column, overflow="fold")
    for item in found:
        billed = _cell(item.billed, " (backend's $)" if item.billed_priced_by == "backend" else "")
        delta = (
            "—" if item.billed is None else f"{item.billed.total - item.counted.total:+,} tokens"
        )
        table.add_row(
            *(
                escape(v)
                for v in (item.label, _cell(item.estimate), _cell(item.counted), billed, delta)
            )
        )
    console.print(table)
    console.print(escape(f"dollars at {table_source}"), soft_wrap=True)
    console.print(escape(f"billing: {billing_note}"), soft_wrap=True)


class CostReport(TypedDict):
    """`chief cost`'s items, the price table they are priced at and how billing answered."""

    items: list[Item]
    prices: str
    billing: str


def cost_report(
    project: Project,
    model: str | None,
    sweep: str | None,
    since: str | None,
    reach: ProjectBackend | None,
) -> CostReport:
    """`chief cost`'s data: the items chosen, the price table, how the billing API answered."""
    from tinker_chief.errors import ChiefError
    from tinker_chief.registry import Registry
    from tinker_chief.spend.billing import items, read_billed
    from tinker_chief.spend.budget import plan_estimates, pricer_of

    pricer, start = pricer_of(project), _since(since)
    note = "not asked (--no-billing): billed figures as last read"
    try:
        plan = plan_estimates(project)
    except ChiefError:
        plan = None  # the estimate column stays empty; the counts and the bill do not need it
    with Registry.open(project.registry_path, create=False) as registry:
        if reach is not None:
            kind = reach.connection().kind
            note = read_billed(
                registry, reach.admin(), [s for s in registry.sessions() if s.backend == kind]
            )
        found = _chosen(items(registry, pricer, plan), registry, model, sweep, start)
    return CostReport(items=found, prices=pricer.table(), billing=note)


@click.command(name="cost")
@project_option
@click.argument("model", required=False)
@click.option("--sweep", "sweep_id", default=None, help="Only the runs of this sweep.")
@click.option(
    "--since",
    default=None,
    metavar="YYYY-MM-DD",
    help="Only what started on or after this date (UTC).",
)
@click.option(
    "--no-billing",
    is_flag=True,
    help="Do not ask the billing API; show the billed figures as last read.",
)
@json_option
@backend_options
def cost_command(
    project_dir: Path,
    model: str | None,
    sweep_id: str | None,
    since: str | None,
    no_billing: bool,
    as_json: bool,
    backend: str | None,
    base_url: str | None,
) -> None:
    """What the project's training runs and evals cost: estimated, counted and billed.

    Per training run (a sweep point is one) and per `chief eval`: the plan's estimate, chief's
    own count (the registry's usage) and what the backend's billing API reports for the SDK
    sessions they used, in tokens and dollars at the dated price table. Without the billing
    role on Tinker's cloud the bill is left empty and says why; the local engine always answers.

    \b
    Examples:
      chief cost
      chief cost tiny:v3 --json
      chief cost --sweep sweep-20261204-021500
      chief cost --since 2026-12-01
    """
    from tinker_chief.planning import load_project

    project = load_project(project_dir)
    _since(since)  # a bad date is refused before anything is reached
    with ProjectBackend(project, backend, base_url) as reach:
        report = cost_report(project, model, sweep_id, since, None if no_billing else reach)
    if as_json:
        import json
        import sys

        out = {**report, "items": [item.to_dict() for item in report["items"]]}
        sys.stdout.write(json.dumps(out, indent=2, sort_keys=True) + "\n")
        return
    print_cost(report["items"], report["prices"], report["billing"], Console())
