"""`chief` commands of this group (placeholder until its capability lands)."""

import click

@click.command(name="demo")
def demo_command() -> None:
    """Not available yet."""


