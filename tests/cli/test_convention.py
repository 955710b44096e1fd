"""Every `chief` command keeps the CLI convention (docs/CLI.md, `cli/convention.py`): walked
from the real click tree, so a new command that forgets `-p/--project` or `--json` fails here
unless the convention names it with a reason. Also: the exit codes come from one table, and the
old spellings still work for one release, each with its note."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import click
import pytest

from tinker_chief.cli.convention import NO_JSON, NO_PROJECT, SHORT_FLAGS
from tinker_chief.cli.main import cli
from tinker_chief.cli.options import JSON_HELP
from tinker_chief.cli.reference import walk
from tinker_chief.errors import ChiefError, PromotionRejected, RunStopped
from tinker_chief.exit_codes import MEANINGS, ExitCode

from cli_support import run_chief

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "tinker_chief"


def _commands() -> dict[str, click.Command]:
    """Every command a user can run, by path (`chief registry list`): leaves, and the groups
    that do something of their own (`chief models`)."""
    found = {}
    # With the group's settings (`-h`), as `chief` runs: click keeps the first help option a
    # command is asked for, and docs/CLI.md is rendered from the same objects.
    for ctx in walk(cli, click.Context(cli, info_name="chief", **cli.context_settings)):
        command = ctx.command
        if not isinstance(command, click.Group) or command.invoke_without_command:
            found[ctx.command_path] = command
    return found


COMMANDS = _commands()


def _visible(command: click.Command, flag: str) -> list[click.Parameter]:
    return [p for p in command.params if flag in p.opts and not getattr(p, "hidden", False)]


def test_the_walk_sees_every_command_and_the_exceptions_name_real_ones() -> None:
    some = {"chief train", "chief sweep", "chief select", "chief registry list", "chief models"}
    assert some <= set(COMMANDS)
    assert set(NO_PROJECT) <= set(COMMANDS) and set(NO_JSON) <= set(COMMANDS)


def _required_unless_exempt(
    path: str, flag: str, exempt: dict[str, str], table: str
) -> click.Parameter | None:
    """The command's one visible `flag`, or None where `exempt` (a cli/convention.py table)
    names the command; either way the other is a failure."""
    found = _visible(COMMANDS[path], flag)
    if path in exempt:
        assert not found, f"{path}: has {flag}, yet cli/convention.py {table} says it has none"
        return None
    assert len(found) == 1, f"{path}: no {flag} (or say why in cli/convention.py {table})"
    return found[0]


@pytest.mark.parametrize("path", sorted(COMMANDS))
def test_every_command_in_a_project_takes_dash_p_project(path: str) -> None:
    option = _required_unless_exempt(path, "--project", NO_PROJECT, "NO_PROJECT")
    if option is not None:
        assert option.opts == ["-p", "--project"], (path, option.opts)
        assert option.name == "project_dir", path
        assert isinstance(option.type, click.Path) and not option.type.file_okay, path


@pytest.mark.parametrize("path", sorted(COMMANDS))
def test_every_reporting_command_has_json(path: str) -> None:
    option = _required_unless_exempt(path, "--json", NO_JSON, "NO_JSON")
    if option is not None:
        assert isinstance(option, click.Option) and option.is_flag, path
        assert option.name == "as_json", path
        assert option.help == JSON_HELP, f"{path}: --json is not `options.json_option`"


@pytest.mark.parametrize("path", sorted(COMMANDS))
def test_short_flags_mean_one_thing_everywhere(path: str) -> None:
    for param in COMMANDS[path].params:
        shorts = [opt for opt in param.opts if len(opt) == 2 and opt.startswith("-")]
        for short in shorts:
            assert short in SHORT_FLAGS and SHORT_FLAGS[short] in param.opts, (path, param.opts)
        for short, long in SHORT_FLAGS.items():
            if long in param.opts and not getattr(param, "hidden", False):
                assert short in param.opts, f"{path}: {long} without its short flag {short}"


@pytest.mark.parametrize("path", sorted(COMMANDS))
def test_task_always_names_a_suite_task(path: str) -> None:
    for option in _visible(COMMANDS[path], "--task"):
        assert "suite task" in (option.help or ""), (path, option.help)
        assert not isinstance(option.type, click.Choice), f"{path}: --task is a recipe again"
    if path == "chief init":
        (recipe,) = _visible(COMMANDS[path], "--recipe")
        assert isinstance(recipe.type, click.Choice)
        assert list(recipe.type.choices) == ["sl", "rl", "dpo", "distill"]


def test_exit_codes_are_one_table() -> None:
    assert set(MEANINGS) == set(ExitCode)
    assert (ExitCode.OK, ExitCode.ERROR, ExitCode.USAGE, ExitCode.INTERRUPTED) == (0, 1, 2, 130)
    assert (
        ChiefError.exit_code == ExitCode.ERROR
        and PromotionRejected.exit_code == ExitCode.GATE_REFUSED
    )
    assert RunStopped.exit_code == ExitCode.STOPPED and click.UsageError.exit_code == ExitCode.USAGE
    assert len(set(ExitCode)) == len(ExitCode.__members__)  # no two names for one number


def _bare_exit_codes(tree: ast.AST) -> list[int]:
    """Lines of `sys.exit(4)`, `SystemExit(1)`, `ctx.exit(2)` or `exit_code = 3`: a number where
    `ExitCode` belongs."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args:
            name = (
                node.func.attr
                if isinstance(node.func, ast.Attribute)
                else getattr(node.func, "id", None)
            )
            first = node.args[0]
            if (
                name in ("exit", "SystemExit")
                and isinstance(first, ast.Constant)
                and type(first.value) is int
            ):
                lines.append(node.lineno)
        if isinstance(node, ast.Assign | ast.AnnAssign) and isinstance(node.value, ast.Constant):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(target, ast.Name) and target.id == "exit_code" for target in targets):
                lines.append(node.lineno)
    return lines


def test_no_code_exits_with_a_bare_number() -> None:
    offenders = [
        f"{path.relative_to(PACKAGE)}:{line}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for line in _bare_exit_codes(ast.parse(path.read_text(encoding="utf-8")))
    ]
    assert not offenders, f"exit with `tinker_chief.exit_codes.ExitCode`, not a number: {offenders}"
    assert _bare_exit_codes(ast.parse("raise SystemExit(1)\nclass E:\n    exit_code = 3")) == [1, 3]


def _old_project(tmp_path: Path) -> Path:
    from tests.training.conftest import make_project

    project = make_project(tmp_path / "old", n_train=8)
    text = (project / "chief.toml").read_text()
    (project / "chief.toml").write_text(text.replace('recipe = "sl"', 'task = "sl"'))
    return project


def test_old_spellings_work_for_one_release_with_a_note(tmp_path: Path) -> None:
    project = _old_project(tmp_path)
    planned = run_chief("plan", str(project), "--json", cwd=tmp_path)
    assert planned.returncode == 0, planned.stderr
    assert json.loads(planned.stdout)["plan"]["recipe"] == "sl"  # stdout: the object alone
    notes = [line for line in planned.stderr.splitlines() if line.startswith("Note: ")]
    assert notes == [
        f"Note: `chief plan {project}` is deprecated and goes in the next release; "
        f"use `chief plan --project {project}`",
        f'Note: {project / "chief.toml"}: `task = "sl"` is the old name of `recipe`; '
        "rename the key (`task` is read until the next release)",
    ], planned.stderr

    both = run_chief("plan", str(project), "-p", str(project), cwd=tmp_path)
    assert both.returncode == ExitCode.USAGE
    assert "give --project only (the positional directory is its old spelling)" in both.stderr


def test_init_reads_the_old_task_flag_as_the_recipe(tmp_path: Path) -> None:
    from tinker_chief.planning import load_project
    from tinker_chief.training.synthetic import write_secret_code_skill

    train, _ = write_secret_code_skill(tmp_path / "data", 16, 4)
    created = run_chief(
        "init", "new", "--use-case", "chat", "-m", "tiny-random-llama", "--train", str(train),
        "--task", "sl",
        cwd=tmp_path,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert (
        "Note: `chief init --task sl` is deprecated and goes in the next release; "
        "use `chief init --recipe sl`" in (created.stderr)
    )
    assert "Note: `chief init new` is deprecated" in created.stderr
    assert load_project(tmp_path / "new").config.recipe == "sl"


def test_init_and_report_print_one_json_object_and_nothing_else(tmp_path: Path) -> None:
    from tinker_chief.training.synthetic import write_secret_code_skill

    train, _ = write_secret_code_skill(tmp_path / "data", 16, 4)
    created = run_chief(
        "init", "-p", "bot", "--use-case", "chat", "-m", "tiny-random-llama", "--train", str(train),
        "--recipe", "sl", "--json", cwd=tmp_path,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    made = json.loads(created.stdout)
    assert (
        made["created"] == str(tmp_path / "bot" / "chief.toml") and made["config"]["recipe"] == "sl"
    )

    reported = run_chief("report", "-p", "bot", "-o", "page.html", "--json", cwd=tmp_path)
    assert reported.returncode == 0, reported.stderr
    assert (tmp_path / json.loads(reported.stdout)["report"]).is_file()
