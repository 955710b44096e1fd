"""SKILL.md stays true to the CLI: frontmatter, and every `chief ...` command it names exists
and its arguments and flags parse in their current spelling (click introspection, nothing is
run)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from tinker_chief.cli.main import cli

SKILL = Path(__file__).resolve().parents[1] / "SKILL.md"


def _commands() -> list[str]:
    return re.findall(r"`(chief [^`]+)`", SKILL.read_text())


def test_frontmatter_has_name_and_description() -> None:
    text = SKILL.read_text()
    match = re.match(r"^---\n(.*?)\n---\n", text, re.DOTALL)
    assert match, "SKILL.md must start with a --- frontmatter block"
    fields = dict(line.split(":", 1) for line in match.group(1).splitlines() if ":" in line)
    assert fields["name"].strip() == "tinker-chief"
    assert len(fields["description"].strip()) > 40


def test_skill_names_the_whole_workflow_in_order() -> None:
    names = [shlex.split(c)[1] for c in _commands()]
    order = [
        "demo",
        "init",
        "plan",
        "eval",
        "train",
        "sweep",
        "select",
        "compare",
        "promote",
        "export",
        "publish",
        "registry",
        "report",
    ]
    positions = [names.index(n) for n in order]
    assert positions == sorted(positions)


@pytest.mark.parametrize("command", _commands())
def test_every_command_exists_and_its_flags_parse(command: str) -> None:
    args = shlex.split(command)[1:]
    # Each context has its parent, as in a real `chief` process: click caches a command's help
    # option from the first context it sees, so an orphan one would change the help that
    # docs/CLI.md is checked against (tests/cli/test_cli_reference.py) in this process.
    ctx = click.Context(cli, info_name="chief", **cli.context_settings)
    group: click.Command = cli
    while isinstance(group, click.Group) and args:  # a bare group (`chief models`) runs too
        name, args = args[0], args[1:]
        sub = group.get_command(ctx, name)
        assert sub is not None, f"`{command}`: no command `{name}`"
        parent, group = ctx, sub
        ctx = click.Context(group, info_name=name, parent=parent)
    if args:
        # raises on unknown flags, bad choices, missing args
        ctx = group.make_context(group.name, list(args), parent=parent)
        # An old spelling still parses for one release (`options.old_spelling`), but the skill
        # teaches the current one.
        old = {
            name: value
            for name, value in ctx.params.items()
            if name.startswith("old_") and value is not None
        }
        assert not old, f"`{command}` uses an old spelling: {old}"
    # a bare mention in prose (`chief eval`) only has to name a real command


def test_a_wrong_flag_would_be_caught() -> None:
    root = click.Context(cli, info_name="chief", **cli.context_settings)
    train = cli.get_command(root, "train")
    with pytest.raises(click.UsageError):
        train.make_context("train", ["--no-such-flag"], parent=root)
