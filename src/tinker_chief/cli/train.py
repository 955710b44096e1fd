"""`chief` commands of this group (placeholder until its capability lands)."""

import click

@click.command(name="train")
def train_command() -> None:
    """Not available yet."""


