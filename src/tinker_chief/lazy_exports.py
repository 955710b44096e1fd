"""A package's names imported on their first use (PEP 562's module `__getattr__`).

The packages whose modules import heavy libraries (evals, planning, tracking) re-export through
one table of `name -> module`, so `import tinker_chief.evals` stays light (no torch, no
inspect_ai) while `from tinker_chief.evals import run_suite` still works; each lists the same
names under `TYPE_CHECKING` for type checkers.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping


def lazy_attribute(package: str, exports: Mapping[str, str]) -> Callable[[str], object]:
    """A module `__getattr__` for `package`: `exports[name]` (a module path) is imported on the
    first use of `name`; any other name is the usual AttributeError."""

    def __getattr__(name: str) -> object:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)

    return __getattr__
