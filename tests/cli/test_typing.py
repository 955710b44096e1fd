"""The CLI's code is typed and fits 100 columns: no `Any` stands in for a real type, and no line
is longer than the house limit."""

from __future__ import annotations

import ast
from pathlib import Path

import tinker_chief.cli

CLI = Path(tinker_chief.cli.__file__).parent
MODULES = sorted(CLI.glob("*.py"))


def _any_uses(path: Path) -> list[str]:
    """Every `Any` the code names (annotations, casts, aliases); docstrings and help text, which
    may say "any" in prose, are not code."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        f"{path.name}:{node.lineno}"
        for node in ast.walk(tree)
        if (isinstance(node, ast.Name) and node.id == "Any")
        or (isinstance(node, ast.Attribute) and node.attr == "Any")
        or (isinstance(node, ast.alias) and node.name == "Any")
    ]


def test_the_cli_names_no_any():
    assert MODULES, CLI
    assert [use for path in MODULES for use in _any_uses(path)] == []


def test_the_cli_fits_100_columns():
    long = [
        f"{path.name}:{number}"
        for path in MODULES
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if len(line) > 100
    ]
    assert long == []
