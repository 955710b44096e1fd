"""The registry's public API: every `__all__` name imports, and the signatures other
capabilities call keep their parameter names (cookbook's downstream_compat idea)."""

from __future__ import annotations

import inspect

import tinker_chief.registry as registry
from tinker_chief.registry import Registry


def params(fn) -> list[str]:
    return [p for p in inspect.signature(fn).parameters if p != "self"]


def test_all_names_import():
    for name in registry.__all__:
        assert getattr(registry, name) is not None, name


def test_key_signatures_are_stable():
    assert params(Registry.open) == ["path", "create", "clock", "read_only"]
    assert params(Registry.register_model)[:2] == ["name", "base_model"]
    assert {
        "lora",
        "optimizer",
        "data",
        "parent",
        "tinker_path",
        "training_run_id",
        "training_step",
        "config",
        "recipe",
        "backend",
    } <= set(params(Registry.register_model))
    assert params(Registry.record_eval)[:6] == [
        "model_ref",
        "suite_name",
        "suite_version",
        "task",
        "metrics",
        "samples",
    ]
    assert params(Registry.start_eval_run)[:4] == ["model_ref", "suite_name", "suite_version", "task"]
    assert params(Registry.finish_eval_run)[:4] == ["run_id", "metrics", "samples", "status"]
    assert params(Registry.latest_results) == ["model_ref", "suite_version"]
    assert params(Registry.promote)[:7] == ["model_ref", "to", "suite", "rules", "actor", "reason", "force"]
    assert params(Registry.compare)[:2] == ["model_refs", "metrics"]
