"""The registry's public API: every `__all__` name imports, and the signatures other
capabilities call keep their parameter names (cookbook's downstream_compat idea)."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import tinker_chief.registry as registry
from tinker_chief.registry import Registry

PACKAGE = Path(registry.__file__).parent


def params(fn) -> list[str]:
    return [p for p in inspect.signature(fn).parameters if p != "self"]


def test_all_names_import():
    for name in registry.__all__:
        assert getattr(registry, name) is not None, name


def test_key_signatures_are_stable():
    assert params(Registry.open) == ["path", "create", "clock", "read_only"]
    assert params(Registry.register_model)[:2] == ["name", "base_model"]
    assert {"lora", "optimizer", "data", "parent", "tinker_path", "training_run_id", "training_step",
            "config", "recipe", "backend"} <= set(params(Registry.register_model))
    assert params(Registry.record_eval)[:6] == ["model_ref", "suite_name", "suite_version", "task", "metrics",
                                                "samples"]
    assert params(Registry.start_eval_run)[:4] == ["model_ref", "suite_name", "suite_version", "task"]
    assert params(Registry.finish_eval_run)[:4] == ["run_id", "metrics", "samples", "status"]
    assert params(Registry.latest_results) == ["model_ref", "suite_version"]
    assert params(Registry.promote)[:7] == ["model_ref", "to", "suite", "rules", "actor", "reason", "force"]
    assert params(Registry.compare)[:2] == ["model_refs", "metrics"]


def test_registry_imports_only_errors_from_tinker_chief():
    """A pure store: no other capability may be imported by the registry package."""
    for path in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tinker_chief"):
                assert node.module == "tinker_chief.errors" or node.module.startswith("tinker_chief.registry"), \
                    f"{path.name} imports {node.module}"
