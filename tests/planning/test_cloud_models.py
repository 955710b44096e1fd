"""Planning Tinker's own models with no local weights: the cookbook's numbers, and which
tokenizer counted the tokens (the model's own from the HF cache, else the measured proxy)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tinker_cookbook import hyperparam_utils
from tinker_cookbook.exceptions import ConfigurationError as CookbookConfigurationError

from tinker_chief.models import lineup, load_tokenizer, resolve_model
from tinker_chief.models.hub import HubFilesMissingError
from tinker_chief.planning.planner import make_plan
from tinker_chief.planning.project_files import init_project
from tinker_chief.planning.tokens import PROXY_ERROR_BOUND, PROXY_TOKENIZER_MODEL

from .conftest import secret_rows
from cli_support import run_chief
from hub_support import stand_in_files, write_cache_entry
from jsonl_support import write_jsonl

QWEN3_8B = "Qwen/Qwen3-8B"


@pytest.fixture(scope="module")
def cloud_project(tmp_path_factory):
    """One project; each lineup model is planned by swapping its base model and renderer."""
    root = tmp_path_factory.mktemp("cloud")
    train = write_jsonl(root / "input" / "train.jsonl", secret_rows(24))
    return init_project(root / "p", use_case="chat", base_model=QWEN3_8B, train=train)


def _plan_for(project, model: str):
    config = project.config.model_copy(
        update={"base_model": model, "renderer": lineup.recommended_renderer(model) or "chatml"}
    )
    return make_plan(type(project)(root=project.root, config=config))


@pytest.mark.parametrize("model", lineup.cookbook_lineup())
def test_plan_numbers_equal_the_cookbook_for_every_lineup_model(cloud_project, model):
    plan = _plan_for(cloud_project, model)
    rank = plan.capacity.configured_rank
    assert resolve_model(model).source == "cloud"
    assert plan.capacity.table[5].rank == 32
    assert plan.capacity.table[5].total == hyperparam_utils.get_lora_param_count(model, 32)
    assert sum(
        plan.capacity.per_rank[k] for k in ("attn", "mlp", "unembed")
    ) * rank == hyperparam_utils.get_lora_param_count(model, rank)
    try:
        expected, why = hyperparam_utils.get_lr(model, is_lora=True), None
    except NotImplementedError:  # no formula for the family (gpt-oss, DeepSeek, Kimi, ...)
        expected, why = None, "not calibrated"
    except (
        CookbookConfigurationError
    ):  # in the LoRA table but not get_lr's families (DeepSeek-V3.1-Base)
        expected, why = None, "unknown"
    recommended = plan.learning_rate.recommended
    assert recommended is not None  # never a crash, never a missing rule
    if expected is not None:
        assert recommended.value == expected
    else:
        assert recommended.rule.startswith(why) and "fallback rule" in recommended.rule
        assert recommended.source.endswith("(fallback)")


def test_qwen3_8b_numbers_are_the_issue_s(cloud_project):
    plan = _plan_for(cloud_project, QWEN3_8B)
    assert plan.capacity.table[5].total == 92_286_976
    assert round(plan.learning_rate.recommended.value, 8) == 4.7298e-4
    assert plan.renderer == "qwen3"


def _env(**extra: str | None) -> dict[str, str | None]:
    return {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **extra}


def _init_and_plan_qwen3_8b(tmp_path: Path, env: dict[str, str | None]) -> dict:
    """`chief init` + `chief plan` of a Qwen3-8B project in a fresh interpreter; plan.json."""
    train = write_jsonl(tmp_path / "train.jsonl", secret_rows(30))
    made = run_chief(
        "init",
        "-p",
        str(tmp_path / "q8"),
        "--use-case",
        "math",
        "-m",
        QWEN3_8B,
        "--train",
        str(train),
        env=env,
    )
    assert made.returncode == 0, made.stderr
    planned = run_chief("plan", "-p", str(tmp_path / "q8"), env=env)
    assert planned.returncode == 0, planned.stderr
    return json.loads((tmp_path / "q8" / "plan.json").read_text())


def test_init_and_plan_offline_with_the_proxy_tokenizer(tmp_path):
    plan = _init_and_plan_qwen3_8b(tmp_path, _env(HF_HUB_CACHE=str(tmp_path / "empty-hub")))
    tokenizer = plan["data"]["tokenizer"]
    assert tokenizer["source"] == "proxy" and tokenizer["estimate"] is True
    assert (
        tokenizer["name"].startswith(PROXY_TOKENIZER_MODEL)
        and tokenizer["error_bound"] == PROXY_ERROR_BOUND
    )
    assert (
        tokenizer["could_flip_rank"] is False
    )  # 30 short answers: rank 32 holds them many times over
    assert plan["capacity"]["table"][5]["total"] == 92_286_976
    assert plan["learning_rate"]["recommended"]["value"] == hyperparam_utils.get_lr(QWEN3_8B)
    assert any("token counts are estimates" in w for w in plan["warnings"])
    assert "**proxy**" in (tmp_path / "q8" / "plan.md").read_text()


def _stand_in_hub(hub: Path) -> None:
    """A hub-layout cache entry for Qwen/Qwen3-8B: its real config.json and a small tokenizer
    (the embedded SmolLM2's, which has the same ChatML markers), no weights."""
    write_cache_entry(hub, QWEN3_8B, stand_in_files(PROXY_TOKENIZER_MODEL))


def test_init_and_plan_offline_with_the_model_tokenizer_in_the_hf_cache(tmp_path):
    _stand_in_hub(tmp_path / "hub")
    plan = _init_and_plan_qwen3_8b(tmp_path, _env(HF_HUB_CACHE=str(tmp_path / "hub")))
    assert plan["data"]["tokenizer"] == {
        "source": "local HF cache",
        "name": QWEN3_8B,
        "estimate": False,
        "error_bound": None,
        "bound_rule": None,
        "could_flip_rank": None,
    }
    assert "renderer `qwen3`" in plan["data"]["rule"]  # its own renderer, not the proxy's
    assert not any("estimates" in w for w in plan["warnings"])
    assert plan["capacity"]["table"][5]["total"] == 92_286_976
    assert "Qwen/Qwen3-8B's own (local HF cache)" in (tmp_path / "q8" / "plan.md").read_text()


def test_lineup_model_without_a_cookbook_count_uses_its_cached_config(tmp_path):
    """Where the cookbook has no count, the config.json in the HF cache gives the numbers."""
    _stand_in_hub(tmp_path / "hub")
    script = (
        "from tinker_cookbook import hyperparam_utils as h; "
        f"del h._LORA_PARAMS_PER_RANK_BY_COMPONENT['{QWEN3_8B}']; "
        "from tinker_chief.planning.capacity import lora_shape; "
        "from tinker_chief.models import load_model_config; "
        f"shape = lora_shape('{QWEN3_8B}', load_config=load_model_config); "
        "print(shape.per_rank(), shape.source)"
    )
    # A fresh interpreter: huggingface_hub reads HF_HUB_CACHE once, at import.
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub")},
    )
    assert out.returncode == 0, out.stderr
    per_rank, source = out.stdout.strip().split(" ", 1)
    assert source.startswith("computed from the model's config.json")
    assert int(per_rank) * 32 == 92_286_976  # the formula reproduces the cookbook's table


def test_load_tokenizer_of_a_cloud_model_offline_names_the_files_and_the_fetch_command():
    with pytest.raises(
        HubFilesMissingError,
        match=r"^Qwen/Qwen3-8B: config.json, tokenizer_config.json, "
        r"tokenizer.json not in the local Hugging Face cache .* `chief models fetch Qwen/Qwen3-8B`",
    ):
        load_tokenizer(QWEN3_8B)


def test_chief_train_on_the_local_engine_refuses_a_cloud_model(tmp_path):
    """Never a silent switch to Tinker's cloud: the local backend says where the model runs."""
    train = write_jsonl(tmp_path / "train.jsonl", secret_rows(30))
    env = _env(HF_HUB_CACHE=str(tmp_path / "empty-hub"), TINKER_API_KEY=None)
    assert (
        run_chief(
            "init",
            "-p",
            str(tmp_path / "q8"),
            "--use-case",
            "math",
            "-m",
            QWEN3_8B,
            "--train",
            str(train),
            env=env,
        ).returncode
        == 0
    )
    trained = run_chief("train", "--backend", "local", env=env, cwd=tmp_path / "q8")
    assert trained.returncode == 1
    assert trained.stderr.strip() == (
        "Error: model Qwen/Qwen3-8B runs on Tinker's cloud only: there are no local weights for "
        "it; train and evaluate it there with `chief train --backend tinker` (and `chief eval` / "
        "`chief eval-offline --backend tinker`), with TINKER_API_KEY set, or put its weights in a "
        "local directory and start the engine with `--allow-model-dir DIR`"
    )
    assert not (tmp_path / "q8" / ".chief" / "engine").exists()  # no engine was started
