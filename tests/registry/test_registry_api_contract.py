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
    assert params(Registry.start_eval_run)[:4] == [
        "model_ref",
        "suite_name",
        "suite_version",
        "task",
    ]
    assert params(Registry.finish_eval_run)[:4] == ["run_id", "metrics", "samples", "status"]
    assert params(Registry.latest_results) == ["model_ref", "suite_version"]
    assert params(Registry.promote)[:7] == [
        "model_ref",
        "to",
        "suite",
        "rules",
        "actor",
        "reason",
        "force",
    ]
    assert params(Registry.compare)[:2] == ["model_refs", "metrics"]


def test_mapping_forms_name_the_record_fields():
    """The dict forms `register_model` accepts (`lora=`, `data=`) are exported, and name exactly
    the fields of the records they stand for, so a field added to one cannot miss the other."""
    from dataclasses import fields

    def names(record: type) -> set[str]:
        return {f.name for f in fields(record)}

    assert set(registry.LoraFields.__annotations__) == names(registry.LoraSpec)
    assert set(registry.DataFields.__annotations__) == names(registry.DataSummary)
    assert set(registry.DataFileFields.__annotations__) == names(registry.DataFile)
