"""The architecture, tested: the real import graph of `src/tinker_chief` against
docs/ARCHITECTURE.md.

The rules are read from the doc's `## Import rules` block, so the doc and this test cannot
drift. Every import counts: module level, inside functions (lazy imports), under
`TYPE_CHECKING` (a type-only import is still a dependency a reader has to follow) and, in a
module that calls `import_module`, every string naming one of our modules (`"pkg.mod"` or
`"pkg.mod:attr"`, the lazy tables of `cli/main.py` and the package `__init__`s).
"""

from __future__ import annotations

import ast
import fnmatch
import importlib
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

import tinker_chief

PACKAGE_DIR = Path(tinker_chief.__file__).parent
ROOT = PACKAGE_DIR.name  # "tinker_chief"
DOC = Path(__file__).resolve().parents[1] / "docs" / "ARCHITECTURE.md"


@dataclass(frozen=True)
class Edge:
    """`source` (a module) imports `target` (a module of ours) at `file:line`."""

    source: str
    target: str
    file: str
    line: int


# ------------------------------------------------------------------------------ the graph


def module_name(path: Path, package_dir: Path = PACKAGE_DIR) -> str:
    parts = list(path.relative_to(package_dir.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _base_of_relative(module: str, is_package: bool, level: int) -> str:
    parts = module.split(".")
    if not is_package:
        parts.pop()  # a module's relative imports start from its package
    return ".".join(parts[: len(parts) - (level - 1)] if level > 1 else parts)


def _resolve(name: str, modules: set[str]) -> str | None:
    """The longest prefix of dotted `name` that is one of our modules (None: not ours)."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def _imported_names(node: ast.AST, source: str, is_package: bool, dynamic: bool) -> list[str]:
    """The dotted names one AST node imports (empty for nodes that import nothing)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            prefix = _base_of_relative(source, is_package, node.level)
            base = f"{prefix}.{base}" if base else prefix
        # `from pkg import sub` imports the submodule `pkg.sub` when there is one.
        return [f"{base}.{alias.name}" for alias in node.names]
    is_text = isinstance(node, ast.Constant) and isinstance(node.value, str)
    if dynamic and is_text and re.fullmatch(rf"{ROOT}(\.\w+)+(:\w+)?", node.value):
        return [node.value.partition(":")[0]]
    return []


def import_edges(package_dir: Path = PACKAGE_DIR) -> tuple[set[str], list[Edge]]:
    """All modules of the package and every import edge between two of them."""
    files = {module_name(p, package_dir): p for p in sorted(package_dir.rglob("*.py"))}
    modules = set(files)
    edges: list[Edge] = []
    for source, path in files.items():
        text = path.read_text(encoding="utf-8")
        is_package, dynamic = path.name == "__init__.py", "import_module" in text
        shown = path.relative_to(package_dir.parent.parent).as_posix()  # src/tinker_chief/...
        for node in ast.walk(ast.parse(text, filename=str(path))):
            for name in _imported_names(node, source, is_package, dynamic):
                target = _resolve(name, modules)
                if target is not None and target != source:
                    edges.append(Edge(source, target, shown, getattr(node, "lineno", 0)))
    return modules, edges


# ------------------------------------------------------------------------------ the rules


@dataclass(frozen=True)
class Rules:
    """Parsed `## Import rules`: which capability may import what, and the shared leaves."""

    allowed: dict[str, list[str]]  # capability -> packages/modules it may import (relative to ROOT)
    text: dict[str, str]  # capability -> the rule as written (without comments), for messages
    shared: list[str]  # leaf modules anyone may import; they import only each other


def _split_top(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    items, depth, current = [], 0, ""
    for ch in text:
        depth += (ch == "(") - (ch == ")")
        if ch == "," and depth == 0:
            items.append(current)
            current = ""
        else:
            current += ch
    return [*items, current]


def _names(text: str) -> list[str]:
    # "(comment)" explains a rule; what is left are dotted names of ours.
    bare = [re.sub(r"\([^)]*\)", "", item).strip() for item in _split_top(text)]
    return [name for name in bare if name]


def parse_rules(doc: str) -> Rules:
    match = re.search(r"^## Import rules\s*\n+```[^\n]*\n(.*?)^```", doc, re.S | re.M)
    assert match, f"{DOC}: no ```-fenced block under `## Import rules`"
    allowed: dict[str, list[str]] = {}
    text: dict[str, str] = {}
    for raw in match.group(1).splitlines():
        if not raw.strip():
            continue
        head, arrow, tail = raw.partition("->")
        assert arrow and head.strip(), f"{DOC}: import rule {raw.strip()!r} is not `name -> a, b`"
        allowed[head.strip()] = _names(tail)
        text[head.strip()] = f"{head.strip()} -> {', '.join(_names(tail)) or '(nothing)'}"
    assert "shared" in allowed, f"{DOC}: no `shared -> ...` row naming the shared leaf modules"
    return Rules(allowed, text, allowed.pop("shared"))


def _qualified(name: str) -> str:
    return name if name == ROOT else f"{ROOT}.{name}"


def _covers(names: list[str], module: str) -> bool:
    """Whether `module` is one of `names` or inside one (the package itself only by its own
    name)."""
    return any(
        module == name or (name != ROOT and module.startswith(name + "."))
        for name in map(_qualified, names)
    )


def capability_of(module: str) -> str:
    """`tinker_chief.evals.graders.base` -> "evals"; `tinker_chief.errors` -> "errors"."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ROOT


def violations(edges: list[Edge], rules: Rules) -> list[str]:
    """One line per import against the rules, `file:line imports X (rule: A -> B, C)`."""
    found: set[tuple[str, int, str]] = set()
    for edge in edges:
        source = capability_of(edge.source)
        if source == capability_of(edge.target):
            continue
        rule = None
        if source in rules.shared:
            if not _covers(rules.shared, edge.target):
                rule = f"shared -> {', '.join(rules.shared)} (leaves import only each other)"
        elif _covers(rules.shared, edge.target):
            continue
        elif source not in rules.allowed:
            rule = f"`{source}` has no row in {DOC.name}"
        elif not _covers(rules.allowed[source], edge.target):
            rule = rules.text[source]
        if rule is not None:
            found.add(
                (
                    edge.file,
                    edge.line,
                    f"{edge.file}:{edge.line} imports {edge.target} (rule: {rule})",
                )
            )
    return [message for _, _, message in sorted(found)]


# ------------------------------------------------------------------------------ cycles


def cycles(modules: set[str], edges: list[Edge]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for edge in edges:
        graph[edge.source].add(edge.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def describe_cycle(component: list[str], edges: list[Edge]) -> str:
    inside = set(component)
    lines = [
        f"{e.file}:{e.line} {e.source} -> {e.target}"
        for e in edges
        if e.source in inside and e.target in inside
    ]
    return "cycle between " + ", ".join(component) + ":\n    " + "\n    ".join(sorted(set(lines)))


# ------------------------------------------------------------------------------ the tests


@pytest.fixture(scope="module")
def graph() -> tuple[set[str], list[Edge]]:
    return import_edges()


def test_every_import_follows_the_rules_in_the_architecture_doc(
    graph: tuple[set[str], list[Edge]],
) -> None:
    _, edges = graph
    found = violations(edges, parse_rules(DOC.read_text(encoding="utf-8")))
    assert not found, "imports against docs/ARCHITECTURE.md:\n" + "\n".join(found)


def test_no_import_cycles_between_modules(graph: tuple[set[str], list[Edge]]) -> None:
    modules, edges = graph
    found = cycles(modules, edges)
    assert not found, "\n".join(describe_cycle(c, edges) for c in found)


def test_nothing_below_the_workflows_imports_them(graph: tuple[set[str], list[Edge]]) -> None:
    """A workflow composes capabilities; a capability that imported one would compose itself."""
    _, edges = graph
    importers = {capability_of(e.source) for e in edges if _covers(["workflows"], e.target)}
    assert importers <= {"cli", "workflows"}, f"{ROOT}.workflows is imported by {sorted(importers)}"


def test_only_chief_demo_imports_the_demo(graph: tuple[set[str], list[Edge]]) -> None:
    """Production commands (`promote`, `compare`, `registry export`) and the other workflows
    take nothing from the demo."""
    _, edges = graph
    demo = "workflows.demo"
    importers = {e.source for e in edges if _covers([demo], e.target)}
    importers = {source for source in importers if not _covers([demo], source)}
    assert importers == {f"{ROOT}.cli.demo"}, f"{ROOT}.{demo} is imported by {sorted(importers)}"


def _named_modules(doc: str) -> dict[str, list[str]]:
    """Package directory (`training`, or "" for the shared leaves) -> the `*.py` names (globs
    allowed) its row of the capability table, or the shared-leaves paragraph, gives."""
    named: dict[str, list[str]] = {}
    for package, owns in re.findall(r"^\| [^|]+ \| `(\w+)/` \| (.*) \|$", doc, re.M):
        named[package] = re.findall(r"`([\w*]+\.py)`", owns)
    shared = re.search(r"^Shared leaf modules:(.*?)\n\n", doc, re.S | re.M)
    assert shared, f"{DOC}: no paragraph starting `Shared leaf modules:`"
    named[""] = re.findall(r"`([\w*]+\.py)`", shared.group(1))
    return named


def test_the_architecture_doc_names_every_module() -> None:
    """Each module is named in its package's row of the table (a shared leaf in its paragraph)."""
    named = _named_modules(DOC.read_text(encoding="utf-8"))
    unnamed = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        relative = path.relative_to(PACKAGE_DIR)
        if path.name == "__init__.py":
            continue
        package = relative.parts[0] if len(relative.parts) > 1 else ""
        if not any(fnmatch.fnmatch(path.name, name) for name in named.get(package, [])):
            where = f"in the row of `{package}/`" if package else "a shared leaf"
            unnamed.append(f"{relative} ({where})")
    assert not unnamed, f"modules {DOC.name} does not name:\n" + "\n".join(unnamed)


# ------------------------------------------------------------------------------ the checker itself

FAKE_RULES = """# Architecture

## Import rules

```
cli       -> workflows, training (to train, test, and so on)
workflows -> training
evals     -> registry
training -> (nothing of ours)
registry -> (nothing of ours)
engine   -> (nothing of ours)
shared   -> tinker_chief (the package), errors
```
"""

FAKE_PACKAGE = {
    "__init__.py": "from tinker_chief.errors import Oops\n",
    "errors.py": "class Oops(Exception): ...\n",
    "cli/__init__.py": "",
    "cli/main.py": "import importlib\nLAZY = {'train': 'tinker_chief.training.loop:run',\n"
    "        'serve': 'tinker_chief.engine.app:app'}\nload = importlib.import_module\n",
    "engine/__init__.py": "",
    "engine/app.py": "app = None\n",
    "evals/__init__.py": "",
    "evals/run.py": "def run():\n    from ..training import loop\n    return loop\n",
    "registry/__init__.py": "",
    "registry/store.py": "from . import gov\n",
    "registry/gov.py": "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n"
    "    from tinker_chief.registry.store import Store\n",
    "training/__init__.py": "",
    "training/loop.py": "from tinker_chief import errors\n\ndef run(): ...\n",
    "training/back.py": "def back():\n    from tinker_chief.workflows.go import again\n",
    "workflows/__init__.py": "",
    "workflows/go.py": "from tinker_chief.training.loop import run\n\ndef again(): ...\n",
}


def test_the_checker_sees_lazy_relative_type_only_and_string_imports(tmp_path: Path) -> None:
    """A made-up package with one offence of each kind: every one is found, nothing else is."""
    package = tmp_path / "src" / ROOT
    for relative, text in FAKE_PACKAGE.items():
        (package / relative).parent.mkdir(parents=True, exist_ok=True)
        (package / relative).write_text(text)
    modules, edges = import_edges(package)

    assert violations(edges, parse_rules(FAKE_RULES)) == [
        f"src/{ROOT}/cli/main.py:3 imports {ROOT}.engine.app (rule: cli -> workflows, training)",
        f"src/{ROOT}/evals/run.py:2 imports {ROOT}.training.loop (rule: evals -> registry)",
        f"src/{ROOT}/training/back.py:2 imports {ROOT}.workflows.go (rule: training -> (nothing))",
    ]
    found = cycles(modules, edges)
    assert found == [[f"{ROOT}.registry.gov", f"{ROOT}.registry.store"]]
    assert describe_cycle(found[0], edges).splitlines()[1:] == [
        f"    src/{ROOT}/registry/gov.py:4 {ROOT}.registry.gov -> {ROOT}.registry.store",
        f"    src/{ROOT}/registry/store.py:1 {ROOT}.registry.store -> {ROOT}.registry.gov",
    ]


def test_every_package_exports_through_a_curated_all() -> None:
    """Each package's `__init__` says what it offers the others the same way: an `__all__` (ruff's
    RUF022 keeps it sorted) whose every name resolves, lazily imported ones included, or an
    empty one where the package's modules are imported by their own paths (cli, engine, workflows
    list their modules)."""
    packages = [ROOT] + sorted(f"{ROOT}.{p.parent.name}" for p in PACKAGE_DIR.glob("*/__init__.py"))
    for name in packages:
        package = importlib.import_module(name)
        exported = getattr(package, "__all__", None)
        assert isinstance(exported, list), f"{name}: no __all__ list"
        for attribute in exported:
            module = f"{name}.{attribute}"
            found = hasattr(package, attribute) or importlib.util.find_spec(module) is not None
            assert found, f"{name}.__all__ names {attribute!r}, which it does not have"


def test_the_lazy_packages_import_light_and_name_what_they_lack() -> None:
    """evals, planning and tracking re-export through `lazy_exports`: importing them loads no
    torch, inspect_ai or tracker library (a fresh interpreter tells), their names still resolve,
    and a name they do not have is the usual AttributeError naming the package."""
    import subprocess
    import sys

    lazy = ("evals", "planning", "tracking")
    heavy = ("torch", "inspect_ai", "mlflow", "trackio", "wandb", "tinker_cookbook")
    probe = (
        "import sys; "
        + "; ".join(f"import {ROOT}.{name}" for name in lazy)
        + f"; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert loaded.strip() == "[]", loaded
    for name in lazy:
        package = importlib.import_module(f"{ROOT}.{name}")
        with pytest.raises(AttributeError, match=f"module '{ROOT}.{name}' has no attribute 'nope'"):
            package.nope  # noqa: B018
