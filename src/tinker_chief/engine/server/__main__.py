"""`python -m tinker_chief.engine.server`: the engine process the launcher starts.

It runs `command.serve_command`, the same click command as `chief engine serve`, so both take
the same flags; errors end as one `Error: ...` line and the error's exit code, as in `chief`.
"""

from __future__ import annotations

import sys

import click

from tinker_chief.engine.server.command import serve_command
from tinker_chief.errors import ChiefError
from tinker_chief.process_exit import skip_final_collection

PROG = "python -m tinker_chief.engine.server"


def main(argv: list[str] | None = None) -> int:
    skip_final_collection()
    try:
        code = serve_command.main(args=argv, prog_name=PROG, standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        return 130
    except ChiefError as exc:
        print(f"Error: {exc}", file=sys.stderr, flush=True)
        return exc.exit_code
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
