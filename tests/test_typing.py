"""The code is typed like the anchors: `Any` stands in for a real type at most 2 times per 1,000
lines of the package (the issue's bar is 10; the cookbook has 8), and the CLI names it nowhere.
Lines fit 100 columns: ruff's E501 (pyproject.toml) holds that, in scripts/check.sh."""

from __future__ import annotations

import ast
from pathlib import Path

import tinker_chief

PACKAGE = Path(tinker_chief.__file__).parent
MODULES = sorted(PACKAGE.rglob("*.py"))


def _any_uses(path: Path) -> list[str]:
    """Every `Any` the code names (annotations, casts, aliases, imports); docstrings and help
    text, which may say "any" in prose, are not code."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        f"{path.relative_to(PACKAGE)}:{node.lineno}"
        for node in ast.walk(tree)
        if (isinstance(node, ast.Name) and node.id == "Any")
        or (isinstance(node, ast.Attribute) and node.attr == "Any")
        or (isinstance(node, ast.alias) and node.name == "Any")
    ]


def test_any_is_rare_in_the_package():
    uses = [use for path in MODULES for use in _any_uses(path)]
    lines = sum(len(path.read_text(encoding="utf-8").splitlines()) for path in MODULES)
    assert lines > 10_000, PACKAGE
    assert len(uses) * 1000 <= 2 * lines, f"{len(uses)} Any in {lines} lines: {uses}"


def test_the_cli_names_no_any():
    cli = [path for path in MODULES if path.parent.name == "cli"]
    assert cli and [use for path in cli for use in _any_uses(path)] == []
