"""`chief` commands of this group (placeholder until its capability lands)."""

import click

@click.command(name="eval")
def eval_command() -> None:
    """Not available yet."""


@click.command(name="eval-offline")
def eval_offline_command() -> None:
    """Not available yet."""


