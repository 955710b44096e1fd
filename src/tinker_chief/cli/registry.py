"""`chief` commands of this group (placeholder until its capability lands)."""

import click

@click.group(name="registry")
def registry_group() -> None:
    """Not available yet."""


@click.command(name="compare")
def compare_command() -> None:
    """Not available yet."""


@click.command(name="promote")
def promote_command() -> None:
    """Not available yet."""


@click.command(name="retire")
def retire_command() -> None:
    """Not available yet."""


