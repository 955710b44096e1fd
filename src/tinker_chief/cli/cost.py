"""Money and checkpoints on the command line: the backend a registry command reaches, gc's report.

`ProjectBackend` connects to the project's backend (flags, environment, `[backend]`, as `chief
train` chooses) only when a command must reach it: promoting a version whose weights expire,
retiring one, `chief registry gc`, `chief cost`. A local engine started for it stops again.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape


class ProjectBackend:
    """The project's backend, connected on first use and closed on exit."""

    def __init__(self, project: Any, backend: str | None, base_url: str | None) -> None:
        self.project, self.backend, self.base_url = project, backend, base_url
        self._connection: Any = None

    def connection(self) -> Any:
        if self._connection is None:
            from tinker_chief.connection import choose_backend, open_connection
            from tinker_chief.paths import ProjectPaths

            section = self.project.config.backend
            choice = choose_backend(
                self.backend, self.base_url, project_kind=section.kind, project_url=section.base_url
            )
            state = ProjectPaths(self.project.root).engine_state
            self._connection = open_connection(choice, state_dir=state)
        return self._connection

    def rest(self) -> Any:
        return self.connection().rest_client()

    def admin(self) -> Any:
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


def print_gc(report: Any, console: Console) -> None:
    """`chief registry gc`'s report: what it deleted (or would), the bytes and money freed."""
    from rich.table import Table

    verb = "would free" if report.dry_run else "freed"
    table = Table(title="Weights to delete" if report.dry_run else "Weights deleted")
    for column in ("model", "why", "bytes", "outcome"):
        table.add_column(column, overflow="fold")
    for item in report.items:
        table.add_row(*(escape(str(v)) for v in (item.ref, item.why, megabytes(item.size_bytes), item.outcome)))
    console.print(table)
    monthly = report.monthly_usd_freed
    cost = f"${monthly:,.4f}/month" if monthly is not None else f"monthly cost unknown: {report.rate_note}"
    console.print(escape(f"{verb} {megabytes(report.bytes_freed)} of checkpoints; storage {cost}"))
    kept = ", ".join(f"{ref} ({why})" for ref, why in sorted(report.protected.items())) or "none"
    console.print(escape(f"kept: {kept}"), soft_wrap=True)
    for note in report.notes:
        console.print(f"[yellow]warning:[/yellow] {escape(note)}")
    for item in report.failed:
        console.print(f"[red]not deleted:[/red] {escape(item.ref)}: {escape(item.outcome)}")


def max_usd_option(function: Any) -> Any:
    """`--max-usd AMOUNT`: this command's dollar budget, replacing `[budget] max_usd`."""
    import click

    return click.option(
        "--max-usd",
        default=None,
        metavar="AMOUNT",
        help="Dollar budget for the project's spend (replaces [budget] max_usd): refuse to "
        "start past it, and stop training at a checkpoint before crossing it (exit code 5).",
    )(function)


def training_guard(project: Any, max_usd: str | None, resume: bool) -> Any:
    """The budget a `chief train` runs under (None: no budget); refuses one that would cross it."""
    from tinker_chief.spend.budget import Budget, start_training
    from tinker_chief.training import RunLog

    budget = Budget.of(project, max_usd)
    if not budget.set:
        return None
    run_id, fraction = None, 1.0
    if resume and (log := RunLog.latest(project.root)) is not None:
        last, total = log.last_checkpoint(), log.status().get("total_steps")
        run_id = log.run_id
        if last is not None and isinstance(total, int) and total > 0:
            fraction = max(0.0, 1 - last.step / total)
    return start_training(project, budget, run_id, fraction)


def refuse_over_budget(project: Any, max_usd: str | None, command: str, estimate_of: Any) -> None:
    """Refuse `command` up front when its estimate (`estimate_of(pricer)`) crosses the budget."""
    from tinker_chief.spend.budget import Budget, check_command

    budget = Budget.of(project, max_usd)
    if budget.set:
        check_command(project, budget, command, estimate_of, [project.config.base_model])


def budget_stopped(result: Any) -> Exception:
    """The error a run the budget stopped exits with (code 5), saying how to go on."""
    from tinker_chief.spend.budget import RAISE_HINT, BudgetExceeded

    return BudgetExceeded(
        f"{result.reason}; stopped at step {result.steps_done}/{result.total_steps} with a "
        f"checkpoint: {RAISE_HINT}, then continue with `chief train --resume`"
    )
