"""Names that do not collide: no two modules of `src/tinker_chief` share a file name, and no two
top-level classes share a name, so a name in a traceback, an import or a review points at one
thing."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import tinker_chief

PACKAGE_DIR = Path(tinker_chief.__file__).parent


def _relative(path: Path) -> str:
    return path.relative_to(PACKAGE_DIR).as_posix()


def test_no_two_modules_share_a_file_name():
    by_name: dict[str, list[str]] = defaultdict(list)
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        if path.name != "__init__.py":
            by_name[path.name].append(_relative(path))
    shared = {name: paths for name, paths in by_name.items() if len(paths) > 1}
    assert not shared, f"modules sharing a file name: {shared}"


def test_no_two_top_level_classes_share_a_name():
    by_name: dict[str, list[str]] = defaultdict(list)
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in tree.body:
            if isinstance(node, ast.ClassDef):
                by_name[node.name].append(f"{_relative(path)}:{node.lineno}")
    shared = {name: places for name, places in by_name.items() if len(places) > 1}
    assert not shared, f"classes sharing a name: {shared}"
