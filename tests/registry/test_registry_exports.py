"""Exports and publications in the registry: one row and its audit row per `chief export` /
`chief publish`, refused when malformed (nothing written), and shown by MODEL_REGISTRY.md and the
report with a link to each hub commit: http(s) only, a hostile hub's other schemes as text."""

from __future__ import annotations

import pytest

from tinker_chief.errors import RegistryError
from tinker_chief.registry import Registry

DIGEST = "ab" * 32


def _registry(tmp_path) -> Registry:
    registry = Registry.open(tmp_path / "registry.db")
    registry.register_model(
        "bot", base_model="tiny-random-llama", tinker_path="tinker://r/sampler_weights/a"
    )
    return registry


def test_an_export_is_one_row_with_its_audit_row(tmp_path):
    with _registry(tmp_path) as registry:
        row = registry.record_export(
            "bot:v1",
            format="adapter",
            target="hub",
            location="org/bot",
            commit_sha="c" * 40,
            url="https://huggingface.co/org/bot/commit/" + "c" * 40,
            weights={"adapter_model.safetensors": DIGEST},
            max_abs_diff=2e-6,
            tolerance=1e-3,
            details={"precision": "float32"},
        )
        assert registry.exports("bot") == [row]
        audit = registry.audit_log()[-1]
        markdown = registry.export_markdown()
    assert (audit.command, audit.target, audit.details["location"]) == (
        "publish",
        "bot:v1",
        "org/bot",
    )
    assert f"[{'c' * 12}](<https://huggingface.co/org/bot/commit/{'c' * 40}>)" in markdown
    assert "### Exports and publications" in markdown


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"format": "gguf"}, "`format` is 'gguf'"),
        ({"weights": {"adapter_model.safetensors": "nope"}}, "sha256"),
        ({"max_abs_diff": float("nan")}, "`max_abs_diff`"),
        ({"location": ""}, "`location`"),
    ],
)
def test_a_malformed_export_is_refused_and_nothing_is_written(tmp_path, changes, message):
    arguments = {
        "format": "adapter",
        "target": "dir",
        "location": "/x",
        "weights": {"a.safetensors": DIGEST},
        "max_abs_diff": 0.0,
        "tolerance": 1e-3,
        **changes,
    }
    with _registry(tmp_path) as registry:
        before = len(registry.audit_log())
        with pytest.raises(RegistryError, match=message):
            registry.record_export("bot:v1", **arguments)
        assert registry.exports() == [] and len(registry.audit_log()) == before


def test_a_hostile_commit_url_is_never_a_link(tmp_path):
    from tinker_chief.reports import collect, render

    (tmp_path / "chief.toml").write_text('name = "p"\nregistry = "registry.db"\n')
    with _registry(tmp_path) as registry:
        registry.record_export(
            "bot:v1",
            format="adapter",
            target="hub",
            location="org/bot",
            commit_sha="d" * 40,
            url="javascript:alert(1)",
            weights={"adapter_model.safetensors": DIGEST},
            max_abs_diff=0.0,
            tolerance=1e-3,
        )
        markdown = registry.export_markdown()
    assert "](<javascript" not in markdown and "javascript:alert(1)" in markdown
    page = render(collect(tmp_path))
    assert 'href="javascript' not in page and "javascript:alert(1)" in page
