"""docs/CLI.md is the CLI's real `--help`, regenerated here: a changed flag or help text without
a regenerated reference fails with the command that fixes it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tinker_chief.cli.reference import COMMAND, render

from cli_support import run_chief

DOC = Path(__file__).resolve().parents[2] / "docs" / "CLI.md"


def _sections(text: str) -> dict[str, str]:
    return dict(
        re.findall(r"^## `(chief[^`]*)`\n\n```text\n(.*?)\n```$", text, re.MULTILINE | re.DOTALL)
    )


def test_docs_cli_md_is_current() -> None:
    on_disk = DOC.read_text(encoding="utf-8") if DOC.exists() else ""
    assert on_disk == render(), f"docs/CLI.md is stale: run `{COMMAND}`"


def test_the_reference_names_every_command_and_subcommand() -> None:
    names = set(_sections(render()))
    assert {
        "chief",
        "chief train",
        "chief registry",
        "chief registry list",
        "chief engine serve",
    } <= names


@pytest.mark.parametrize("command", ["chief", "chief registry list", "chief engine serve"])
def test_each_section_is_what_the_installed_command_prints(command: str) -> None:
    # Any terminal of 80 columns or more prints the same help; the reference is fixed to it.
    result = run_chief(*command.split()[1:], "--help", env={"COLUMNS": "120"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.rstrip() == _sections(render())[command]
