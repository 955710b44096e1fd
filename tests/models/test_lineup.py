"""`chief models` and the lineup: every model the cookbook knows, with its numbers and where it
runs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from tinker_cookbook import hyperparam_utils, model_info

from tinker_chief.errors import ModelNotFoundError
from tinker_chief.models import (
    CloudOnlyModelError,
    LocalModelDirs,
    lineup,
    load_model_config,
    materialize_model,
    resolve_model,
)

from cli_support import chief_in_process as chief


def test_lineup_is_every_model_the_cookbook_knows():
    names = set(lineup.cookbook_lineup())
    assert set(hyperparam_utils._LORA_PARAMS_PER_RANK_BY_COMPONENT) <= names
    assert {f"Qwen/{v}" for v in model_info.get_qwen_info()} <= names
    assert {
        "Qwen/Qwen3-8B",
        "meta-llama/Llama-3.1-8B-Instruct",
        "openai/gpt-oss-20b",
        "deepseek-ai/DeepSeek-V3.1",
        "Qwen/Qwen3-30B-A3B-Instruct-2507",
    } <= names


def test_resolving_a_lineup_name_imports_neither_transformers_nor_torch():
    """Every command resolves its model name: the cookbook's tables are read from its source, as
    importing `hyperparam_utils` imports transformers and torch (seconds of each `chief` start)."""
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from tinker_chief.models import lineup, resolve_model; "
            "print(resolve_model('qwen/QWEN3-8b').name, "
            "lineup.cookbook_hidden_size('Qwen/Qwen3-8B'), len(lineup.cookbook_lineup()), "
            "sorted({'transformers', 'torch'} & set(sys.modules)))",
        ],
        capture_output=True,
        text=True,
    )
    assert probe.returncode == 0, probe.stderr
    names = str(len(lineup.cookbook_lineup()))
    assert probe.stdout.split() == ["Qwen/Qwen3-8B", "4096", names, "[]"]


def test_chief_models_json(capsys):
    code, out, _ = chief(capsys, "models", "--json")
    assert code == 0
    rows = {row["name"]: row for row in json.loads(out)["models"]}
    assert set(lineup.cookbook_lineup()) | {
        "SmolLM2-135M-Instruct-Q4_1",
        "tiny-random-llama",
    } == set(rows)
    qwen = rows["Qwen/Qwen3-8B"]
    assert qwen["runs_on"] == "Tinker's cloud" and qwen["weights_here"] is False
    assert qwen["renderer"] == "qwen3" and qwen["hidden_size"] == 4096
    assert sum(qwen["lora_per_rank"].values()) * 32 == 92_286_976
    assert qwen["lr_rule"] == f"get_lr = {hyperparam_utils.get_lr('Qwen/Qwen3-8B'):.4g}"
    assert rows["openai/gpt-oss-20b"]["lr_rule"].startswith("not calibrated")
    assert (
        rows["tiny-random-llama"]["runs_on"] == "embedded"
        and rows["tiny-random-llama"]["weights_here"]
    )


def test_chief_models_table(capsys):
    code, out, _ = chief(capsys, "models")
    assert code == 0
    assert (
        "Qwen/Qwen3-8B" in out
        and "Tinker's cloud" in out
        and "958,464 / 1,769,472 / 156,032" in out
    )
    assert "cloud only" in out and "embedded" in out


def test_bad_names_list_near_matches(capsys, tmp_path):
    # Spelled like a hub id, it is one for chief's own commands, and its missing files say which
    # lineup name is near; the engine still serves no hub id it lacks (the same near matches).
    assert resolve_model("qwen/qwen3-8").source == "cloud"
    with pytest.raises(
        ModelNotFoundError,
        match=r"`chief models fetch qwen/qwen3-8` while online "
        r"\(did you mean Qwen/Qwen3-8B",
    ):
        load_model_config("qwen/qwen3-8")
    with pytest.raises(
        ModelNotFoundError, match=r"unknown model qwen/qwen3-8: .*did you mean Qwen/Qwen3-8B"
    ) as info:
        resolve_model("qwen/qwen3-8", LocalModelDirs())
    assert not isinstance(info.value, CloudOnlyModelError)
    code, _, err = chief(
        capsys,
        "init",
        "-p",
        str(tmp_path / "p"),
        "--use-case",
        "chat",
        "--base-model",
        "Llama-3.1-8B",
        "--train",
        str(tmp_path / "none.jsonl"),
    )
    assert code == 1 and "unknown model Llama-3.1-8B" in err and "meta-llama/Llama-3.1-8B" in err
    assert len(err.strip().splitlines()) == 1


def test_lineup_names_resolve_case_insensitively_to_cloud_models():
    spec = resolve_model("qwen/QWEN3-8b")
    assert (spec.name, spec.source, spec.renderer, spec.local_dir) == (
        "Qwen/Qwen3-8B",
        "cloud",
        "qwen3",
        None,
    )


def test_cloud_model_has_no_local_weights_and_says_what_to_do():
    with pytest.raises(
        CloudOnlyModelError,
        match=r"runs on Tinker's cloud only.*--backend tinker.*--allow-model-dir",
    ):
        materialize_model("Qwen/Qwen3-8B")
    with pytest.raises(CloudOnlyModelError, match="runs on Tinker's cloud only"):
        resolve_model("Qwen/Qwen3-8B", LocalModelDirs())
