"""The CLI reference (`docs/CLI.md`), generated from the real `--help` of every command.

`python -m tinker_chief.cli.reference --write` walks the click tree under `chief` (every group
and subcommand, in the order `chief --help` lists them) and writes each one's help text, so the
reference cannot say something the CLI does not. Above it goes the convention every command
keeps (`cli/convention.py`: flags, JSON output, exit codes), the file's only hand-written text.
tests/cli/test_cli_reference.py regenerates it and fails when the file on disk differs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

import click

from tinker_chief.cli import convention
from tinker_chief.cli.main import cli

# Fixed, so the file is the same everywhere (click reads the terminal's size otherwise): what
# `chief --help` prints on any terminal of 80 columns or more (click's cap of 80, less 2).
WIDTH = 78
DOC = Path("docs") / "CLI.md"
COMMAND = "python -m tinker_chief.cli.reference --write"

HEADER = f"""# CLI reference

The convention every command keeps, then every `chief` command and subcommand with its
`--help`, in the order `chief --help` lists them. Generated from the CLI itself (the convention
from `src/tinker_chief/cli/convention.py`) by
`{COMMAND}`; do not edit by hand
(tests/cli/test_cli_reference.py fails when this file is stale).
"""


def walk(command: click.Command, ctx: click.Context) -> Iterator[click.Context]:
    """Each command's context, parents before children (a group's own help comes first)."""
    yield ctx
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                yield from walk(
                    sub, click.Context(sub, info_name=name, parent=ctx, **sub.context_settings)
                )


def render() -> str:
    """The whole reference as Markdown."""
    root = click.Context(cli, info_name="chief", terminal_width=WIDTH, **cli.context_settings)
    sections = [HEADER, convention.section()]
    for ctx in walk(cli, root):
        help_text = ctx.command.get_help(ctx).rstrip()
        sections.append(f"## `{ctx.command_path}`\n\n```text\n{help_text}\n```\n")
    return "\n".join(sections)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tinker_chief.cli.reference", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--write", action="store_true", help=f"write {DOC} (relative to the current directory)"
    )
    args = parser.parse_args(argv)
    text = render()
    if args.write:
        DOC.write_text(text, encoding="utf-8")
        print(f"wrote {DOC}")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
