"""Any hub id is a base model to plan: online its config.json and tokenizer
are fetched (never weights) into the HF cache, offline they are read from it, and without them
the error names the files and `chief models fetch`. The hub is a local stand-in (hub_support)."""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

import pytest
from tinker_cookbook import hyperparam_utils

from tinker_chief.errors import ConfigurationError
from tinker_chief.models import TINY_MODEL, load_model_config, renderer_name_for

from .conftest import secret_rows
from cli_support import assert_one_line_error, chief_in_process, run_chief
from hub_support import hub_stand_in, online_env, stand_in_files, write_cache_entry
from jsonl_support import write_jsonl

MODEL = "Some/Model"  # not in Tinker's lineup: every number comes from its own files


@pytest.fixture(scope="module")
def hub():
    """The stand-in hub with one repo: Qwen3-8B's config, the tiny model's tokenizer (ChatML
    template) and a weights file, which no test may ever see requested."""
    files = {**stand_in_files(TINY_MODEL), "model.safetensors": b"weights"}
    with hub_stand_in({MODEL: files}) as stand_in:
        yield stand_in


def _offline(cache: Path) -> dict[str, str | None]:
    return {"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def _init(tmp_path: Path, env: dict[str, str | None], model: str = MODEL):
    train = write_jsonl(tmp_path / "train.jsonl", secret_rows(30))
    return run_chief(
        "init",
        "-p",
        str(tmp_path / "p"),
        "--use-case",
        "math",
        "--base-model",
        model,
        "--train",
        str(train),
        env=env,
    )


def _plan(tmp_path: Path, env: dict[str, str | None]) -> dict:
    planned = run_chief("plan", "-p", str(tmp_path / "p"), env=env)
    assert planned.returncode == 0, planned.stderr
    return json.loads((tmp_path / "p" / "plan.json").read_text())


def _files_asked(hub) -> list[str]:
    return [request.rsplit("/", 1)[1] for request in hub.requests if "/resolve/" in request]


def test_a_hub_model_is_planned_online_then_offline_from_the_cache(tmp_path, hub):
    cache = tmp_path / "hub"
    made = _init(tmp_path, online_env(hub, cache))
    assert made.returncode == 0, made.stderr
    assert (
        "base model Some/Model (renderer chatml)" in made.stdout
    )  # from the fetched ChatML template
    snapshot = next((cache / "models--Some--Model" / "snapshots").iterdir())
    assert sorted(p.name for p in snapshot.iterdir()) == [
        "chat_template.jinja",
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    assert json.loads((snapshot / "config.json").read_text())["hidden_size"] == 4096

    shutil.rmtree(cache)  # `chief plan` fetches again, and says it did
    online = _plan(tmp_path, online_env(hub, cache))
    assert online["data"]["tokenizer"] == {
        "source": "hub",
        "name": MODEL,
        "estimate": False,
        "error_bound": None,
        "bound_rule": None,
        "could_flip_rank": None,
    }
    asked = len(hub.requests)
    offline = _plan(tmp_path, _offline(cache))
    assert len(hub.requests) == asked  # offline: not one request
    assert offline["data"]["tokenizer"]["source"] == "local HF cache"
    for plan in (online, offline):
        # Qwen3-8B's numbers, from its config.json alone (the cookbook does not know Some/Model).
        assert plan["capacity"]["table"][5]["total"] == 92_286_976
        assert plan["capacity"]["source"].startswith("computed from the model's config.json")
        assert plan["learning_rate"]["recommended"]["value"] == pytest.approx(
            hyperparam_utils.get_lr("Qwen/Qwen3-8B")
        )
        assert plan["data"]["completion_tokens"] == online["data"]["completion_tokens"] > 0
    assert not any(name.endswith(".safetensors") for name in _files_asked(hub))
    assert {"config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja"} <= set(
        _files_asked(hub)
    )


def test_offline_without_its_files_a_hub_model_is_one_error_naming_them(tmp_path):
    made = _init(tmp_path, _offline(tmp_path / "empty-hub"))
    assert_one_line_error(
        made,
        "Some/Model: config.json, tokenizer_config.json, tokenizer.json not in the local "
        f"Hugging Face cache ({tmp_path / 'empty-hub'}) and the hub is off (HF_HUB_OFFLINE=1)",
        "with `chief models fetch Some/Model` while online",
    )
    assert not (tmp_path / "p" / "chief.toml").exists()


def test_chief_models_fetch_gets_config_and_tokenizer_only(tmp_path, hub):
    cache = tmp_path / "hub"
    before = len(hub.requests)
    fetched = run_chief("models", "fetch", MODEL, env=online_env(hub, cache))
    assert fetched.returncode == 0, fetched.stderr
    assert fetched.stderr.splitlines() == [
        f"fetching Some/Model's config and tokenizer from {hub.url} (no weights)",
        "  config.json (1/4)",
        "  tokenizer.json (2/4)",
        "  tokenizer_config.json (3/4)",
        "  chat_template.jinja (4/4)",
    ]
    written = Path(fetched.stdout.strip().rsplit(" in ", 1)[1])
    assert (
        written.parent.parent == cache / "models--Some--Model"
        and (written / "config.json").is_file()
    )
    assert not any(name.endswith(".safetensors") for name in _files_asked(hub)[before:])
    again = run_chief("models", "fetch", MODEL, env=_offline(cache))
    assert_one_line_error(
        again,
        "cannot fetch Some/Model: the hub is off (HF_HUB_OFFLINE=1); its config and "
        "tokenizer in the local Hugging Face cache stay as they are",
    )


def test_a_name_the_hub_does_not_know_is_one_error_with_near_matches(tmp_path, hub):
    made = _init(tmp_path, online_env(hub, tmp_path / "hub"), model="Qwen/Qwen3-8")
    assert_one_line_error(
        made,
        "unknown model Qwen/Qwen3-8: the Hugging Face hub has no such model",
        "did you mean Qwen/Qwen3-8B",
    )


def test_an_unreachable_hub_is_one_error_naming_the_files_and_the_command(tmp_path):
    with socket.socket() as probe:  # a port nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **_offline(tmp_path / "hub"),
        "HF_HUB_OFFLINE": None,
        "TRANSFORMERS_OFFLINE": None,
        "HF_ENDPOINT": f"http://127.0.0.1:{port}",
        "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",
    }
    made = _init(tmp_path, env)
    assert_one_line_error(
        made,
        f"the hub (http://127.0.0.1:{port}) cannot be reached (ConnectError)",
        "`chief models fetch Some/Model`",
    )


def test_a_hub_model_gets_the_chatml_renderer_only_with_a_chatml_template(tmp_path):
    cache = Path(
        os.environ["HF_HUB_CACHE"]
    )  # this run's cache (tests/conftest.py), read in-process
    chatml = stand_in_files(TINY_MODEL)
    write_cache_entry(cache, "Stand-In/ChatML", chatml)
    write_cache_entry(
        cache, "Stand-In/Plain", {**chatml, "chat_template.jinja": b"{{ messages[0].content }}"}
    )
    assert renderer_name_for("Stand-In/ChatML") == "chatml"
    assert load_model_config("Stand-In/ChatML")["hidden_size"] == 4096
    with pytest.raises(
        ConfigurationError,
        match=r"^no chat renderer for Stand-In/Plain: the cookbook does not list "
        r"it and its chat template is not ChatML",
    ):
        renderer_name_for("Stand-In/Plain")


def test_chief_models_fetch_needs_a_hub_id(capsys):
    code, out, err = chief_in_process(capsys, "models", "fetch", TINY_MODEL)
    assert (code, out) == (1, "")
    assert (
        err
        == f"Error: chief models fetch {TINY_MODEL}: expected a Hugging Face hub id (org/name)\n"
    )
