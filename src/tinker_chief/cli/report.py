"""`chief` commands of this group (placeholder until its capability lands)."""

import click

@click.command(name="report")
def report_command() -> None:
    """Not available yet."""


