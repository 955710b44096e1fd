"""`chief` commands of this group (placeholder until its capability lands)."""

import click

@click.group(name="engine")
def engine_group() -> None:
    """Not available yet."""


