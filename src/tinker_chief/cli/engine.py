"""`chief engine serve`: the engine's own command (`engine.server.command`), the one `python -m
tinker_chief.engine.server` runs too, so the two share every flag. Exports are `chief export`.
"""

from __future__ import annotations

import click

from tinker_chief.engine.server.command import serve_command


@click.group(name="engine")
def engine_group() -> None:
    """The local Tinker-compatible engine (LoRA training and sampling on this machine)."""


engine_group.add_command(serve_command)
