"""`chief` commands of this group (placeholder until its capability lands)."""

import click

@click.command(name="init")
def init_command() -> None:
    """Not available yet."""


@click.command(name="plan")
def plan_command() -> None:
    """Not available yet."""


