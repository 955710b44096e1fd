"""Entry point of the `chief` command: a lazily loaded click group and the error boundary.

Every `ChiefError` raised by the library becomes `Error: <message>` on stderr and its exit
code, never a traceback (`--debug` shows one); a usage error exits 2 and Ctrl-C 130 (the table:
`tinker_chief.exit_codes`). An old spelling the library still reads (`ChiefDeprecation`) is one
`Note: ...` line on stderr.
"""

from __future__ import annotations

import importlib
import os
import sys
import warnings
from typing import TextIO

import click

from tinker_chief import __version__
from tinker_chief.cli.options import note
from tinker_chief.errors import ChiefDeprecation, ChiefError
from tinker_chief.exit_codes import ExitCode
from tinker_chief.process_exit import skip_final_collection
from tinker_chief.settings import check_hub_environment

# name -> "module:attribute"; the order here is the order `chief --help` lists them in.
COMMANDS: dict[str, str] = {
    "models": "tinker_chief.cli.models:models_command",
    "init": "tinker_chief.cli.plan:init_command",
    "plan": "tinker_chief.cli.plan:plan_command",
    "train": "tinker_chief.cli.train:train_command",
    "sweep": "tinker_chief.cli.sweep:sweep_command",
    "select": "tinker_chief.cli.sweep:select_command",
    "eval": "tinker_chief.cli.eval:eval_command",
    "eval-offline": "tinker_chief.cli.eval:eval_offline_command",
    "benchmarks": "tinker_chief.cli.benchmarks:benchmarks_group",
    "registry": "tinker_chief.cli.registry:registry_group",
    "compare": "tinker_chief.cli.registry:compare_command",
    "promote": "tinker_chief.cli.registry:promote_command",
    "retire": "tinker_chief.cli.registry:retire_command",
    "cost": "tinker_chief.cli.cost:cost_command",
    "report": "tinker_chief.cli.report:report_command",
    "playground": "tinker_chief.cli.playground:playground_command",
    "export": "tinker_chief.cli.publish:export_command",
    "publish": "tinker_chief.cli.publish:publish_command",
    "engine": "tinker_chief.cli.engine:engine_group",
    "demo": "tinker_chief.cli.demo:demo_command",
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported only when used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attribute = target.split(":")
        return getattr(importlib.import_module(module_name), attribute)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="chief")
@click.option(
    "--debug",
    is_flag=True,
    envvar="CHIEF_DEBUG",
    show_envvar=True,
    help="Show full tracebacks on errors.",
)
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """chief: a chief officer for LoRA post-training with the Tinker API.

    The workflow, in order:

    \b
      chief models    the base models chief can use, and where each runs
      chief init      create a project (chief.toml) from your data and use case
      chief plan      write plan.md/plan.json: every setting and the rule behind it
      chief train     run the plan on the local engine or Tinker's cloud
      chief sweep     train a grid of learning rates (and ranks) around the plan
      chief select    choose a sweep's or run's best checkpoint as its candidate
      chief eval      run the project's eval suite on a model, record results
      chief compare   compare models metric by metric, with significance
      chief promote   move a model to staging/prod through the regression gate
      chief report    an HTML report of curves, evals and registry status
      chief playground  chat with models side by side, read eval diffs (browser)
      chief export    a version as a verified PEFT adapter (or merged model) with its card
      chief publish   push that export to the Hugging Face hub

    \b
    Try it end to end:  chief demo
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


_default_show_warning = warnings.showwarning


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """`ChiefDeprecation` as one `Note: ...` line; every other warning as Python shows it."""
    if issubclass(category, ChiefDeprecation):
        note(str(message))
    else:
        _default_show_warning(message, category, filename, lineno, file, line)


def _debug_from_environment() -> bool:
    """`CHIEF_DEBUG` read by click's own BOOL, as click reads it for `--debug` (0, false, no, off
    or blank are off). A value click refuses counts as on here; click reports it when it parses."""
    try:
        return bool(click.BOOL.convert(os.environ.get("CHIEF_DEBUG", ""), None, None))
    except click.BadParameter:
        return True


def main(argv: list[str] | None = None) -> object:
    skip_final_collection()
    debug = "--debug" in (argv or sys.argv[1:]) or _debug_from_environment()
    if not debug:
        # The cookbook's NLL evaluator calls an SDK method the SDK marks deprecated; users
        # cannot act on that, so it stays out of their terminal (--debug shows it).
        warnings.filterwarnings("ignore", category=FutureWarning, module="tinker_cookbook")
    warnings.showwarning = _show_warning
    try:
        check_hub_environment()  # before anything imports huggingface_hub
        return cli.main(args=argv, prog_name="chief", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(ExitCode.INTERRUPTED)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(ExitCode.INTERRUPTED)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except ChiefError as exc:
        if debug:
            raise
        # Key-looking text in the message and reasons was replaced when the error was made
        # (`errors.ChiefError`), so a key pasted into the wrong place is never echoed back.
        click.secho(f"Error: {exc}", fg="red", err=True)
        for reason in exc.reasons:
            click.echo(f"  - {reason}", err=True)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
