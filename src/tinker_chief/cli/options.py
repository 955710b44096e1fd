"""Options several commands share, so their flags and help read the same everywhere."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

BACKEND_HELP = (
    "local: chief's engine, started here (state in .chief/engine) unless --base-url names a "
    "running one; tinker: Tinker's cloud (needs TINKER_API_KEY). Without flags: "
    "$CHIEF_ENGINE_URL / $TINKER_BASE_URL, then the project's [backend], then Tinker's cloud "
    "if TINKER_API_KEY is set, else a local engine."
)


def backend_options(function: F) -> F:
    """`--backend` and `--base-url`, resolved by `tinker_chief.connection.choose_backend`."""
    function = click.option(
        "--base-url", default=None, help="Talk to an engine (or Tinker's service) already running at this URL."
    )(function)
    return click.option("--backend", type=click.Choice(["local", "tinker"]), default=None, help=BACKEND_HELP)(function)


def project_option(function: F) -> F:
    """`--project DIR`, the directory holding chief.toml (default: the current one)."""
    return click.option(
        "--project",
        "project_dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=Path("."),
        show_default=True,
        help="Project directory (holds chief.toml).",
    )(function)


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
