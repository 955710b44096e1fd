"""Options several commands share, so their flags and help read the same everywhere.

The convention they make (docs/CLI.md, `cli/convention.py`): `-p/--project DIR` wherever a
command works in a project, `--json` for one JSON object on stdout, `-m` for `--base-model`,
`-o` for `--output`; an old spelling is read for one more release with a note (`old_spelling`).
"""

from __future__ import annotations

import functools
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar, cast

import click
from click.core import ParameterSource

F = TypeVar("F", bound=Callable[..., object])

BACKEND_HELP = (
    "local: chief's engine, started here (state in .chief/engine) unless --base-url names a "
    "running one; tinker: Tinker's cloud (needs TINKER_API_KEY). Without flags: "
    "$CHIEF_ENGINE_URL / $TINKER_BASE_URL, then the project's [backend], then Tinker's cloud "
    "if TINKER_API_KEY is set, else a local engine."
)


def backend_options(function: F) -> F:
    """`--backend` and `--base-url`, resolved by `tinker_chief.connection.choose_backend`."""
    function = click.option(
        "--base-url",
        default=None,
        help="Talk to an engine (or Tinker's service) already running at this URL.",
    )(function)
    return click.option(
        "--backend", type=click.Choice(["local", "tinker"]), default=None, help=BACKEND_HELP
    )(function)


PROJECT_HELP = "Project directory (holds chief.toml)."
JSON_HELP = "Print exactly one JSON object on stdout (progress and notes go to stderr)."


def project_option(function: F) -> F:
    """`-p/--project DIR`, the directory holding chief.toml (default: the current one)."""
    return new_project_option(Path("."), PROJECT_HELP)(function)


def new_project_option(default: Path, help_text: str) -> Callable[[F], F]:
    """`-p/--project DIR` for a command that creates the project there (`init`, `demo`)."""
    return click.option(
        "-p",
        "--project",
        "project_dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=default,
        show_default=True,
        help=help_text,
    )


def json_option(function: F) -> F:
    """`--json`: the command's result as one JSON object on stdout, and nothing else there."""
    return click.option("--json", "as_json", is_flag=True, help=JSON_HELP)(function)


def print_json(value: object, indent: int | None = None, sort_keys: bool = False) -> None:
    """The one JSON object `--json` prints (paths and dates as strings)."""
    sys.stdout.write(json.dumps(value, indent=indent, sort_keys=sort_keys, default=str) + "\n")


def note(text: str) -> None:
    """One `Note: ...` line on stderr (never stdout, which `--json` keeps for its object)."""
    click.echo(f"Note: {text}", err=True)


class FiniteFloatRange(click.FloatRange):
    """`click.FloatRange` that also refuses nan and inf, which its bounds let through (nan
    compares false with both)."""

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        number = float(super().convert(cast(float, value), param, ctx))  # str or float
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


SEED = click.IntRange(-(2**63), 2**63 - 1)  # what the SDK's int64 seed holds


def checked_actor(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """`--actor` / `$CHIEF_ACTOR` as the audit log records it: trimmed, blank meaning the login
    name (None), and refused with a control character, which would forge or break an audit line."""
    actor = (value or "").strip()
    if any(not character.isprintable() for character in actor):
        raise click.BadParameter(f"expected a printable name, got {actor[:40]!r}")
    return actor or None


class _UnlistedArgument(click.Argument):
    """A positional kept for old scripts: parsed, but shown nowhere in `--help`."""

    def get_usage_pieces(self, ctx: click.Context) -> list[str]:
        return []


def old_spelling(
    old: str, new: str, dest: str, type: click.ParamType | None = None
) -> Callable[[F], F]:
    """Accept `old`, the spelling of `new` before this release, until the next one: its value
    goes to the parameter `dest`, with a note on stderr. `old` without dashes is a positional
    (`chief init DIR`), else a hidden option (`chief init --task rl`); giving both is a usage
    error. Hidden from `--help`, so the reference shows only the current spelling."""
    legacy, is_option = f"old_{dest}", old.startswith("-")

    def decorate(function: F) -> F:
        @functools.wraps(function)
        def wrapper(*args: object, **kwargs: object) -> object:
            value = kwargs.pop(legacy)
            if value is not None:
                ctx = click.get_current_context()
                if ctx.get_parameter_source(dest) == ParameterSource.COMMANDLINE:
                    what = old if is_option else "the positional directory"
                    raise click.UsageError(f"give {new} only ({what} is its old spelling)")
                spelled = f"{old} {value}" if is_option else str(value)
                note(
                    f"`{ctx.command_path} {spelled}` is deprecated and goes in the next release; "
                    f"use `{ctx.command_path} {new} {value}`"
                )
                kwargs[dest] = value
            return function(*args, **kwargs)

        if is_option:
            parameter = click.option(old, legacy, type=type, default=None, hidden=True)
        else:
            parameter = click.argument(legacy, cls=_UnlistedArgument, type=type, required=False)
        return parameter(wrapper)  # type: ignore[return-value]

    return decorate


# `planning.config.TRACKERS`, spelled here so `chief --help` does not load the schema.
TRACK_CHOICES = ("none", "trackio", "wandb", "mlflow")


def track_option(function: F) -> F:
    """`--track NAME`: mirror what the command does into an experiment tracker."""
    return click.option(
        "--track",
        type=click.Choice(TRACK_CHOICES),
        metavar="NAME",
        default=None,
        help="Mirror runs, evals and verdicts into an experiment tracker: none, trackio, wandb "
        "or mlflow [default: chief.toml's [tracking] backend, else none]. See docs/TRACKING.md.",
    )(function)


def tracker_warning(message: str) -> None:
    """A tracker's one warning (it failed; the command goes on), on stderr: stdout is `--json`'s."""
    click.secho(f"warning: {message}", fg="yellow", err=True)


def trust_remote_code_option(function: F) -> F:
    """`--trust-remote-code`: the base model's own Python code may run (refused without it)."""
    return click.option(
        "--trust-remote-code",
        is_flag=True,
        help="Let the model's own Python code (an auto_map in its tokenizer_config.json or "
        "config.json) be fetched and run when its tokenizer is loaded; without it such a model "
        "is refused. Read that code first.",
    )(function)


def precision_label(backend_kind: str | None, engine_precision: str | None) -> str:
    """The precision a run's numbers were computed in, as the summaries print it."""
    if backend_kind == "tinker":
        return "Tinker's cloud"
    return engine_precision or "unknown (the engine did not say)"


def throughput_text(tokens: float, seconds: float, what: str) -> str:
    """`1,234 tok/s (4,096 <what> in 3.3 s)`, or why there is no rate."""
    if seconds <= 0 or tokens <= 0:
        return f"no {what} timed"
    return f"{tokens / seconds:,.0f} tok/s ({tokens:,.0f} {what} in {seconds:.1f} s)"
