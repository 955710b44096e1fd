"""The `chief` command line: parse flags, open the project, call the library or a workflow, print.

Nothing here holds logic a library user would need. `main.py` is the entry point
(`tinker_chief.cli.main:main`): a click group that loads each command group lazily, so
`chief --help` starts without importing torch, and the error boundary that turns a `ChiefError`
into one `Error: ...` line and its exit code. One module per command group: `models.py`,
`plan.py` (`init`, `plan`), `train.py`, `sweep.py` (`sweep`, `select`), `eval.py` (`eval`,
`eval-offline`), `benchmarks.py`, `registry.py` (`registry`, `compare`, `promote`, `retire`),
`cost.py`, `report.py`, `playground.py`, `publish.py` (`export`, `publish`), `engine.py` and
`demo.py`. `options.py` holds the flags they share, `convention.py` the convention they keep,
and `reference.py` writes the CLI reference (docs/CLI.md) from the same click tree.

This package re-exports nothing: importing it loads no command, and `python -m
tinker_chief.cli.main` runs the entry point without importing it twice.
"""

__all__: list[str] = []
