"""make_plan on fixture projects (golden plan.json), and `chief init` / `chief plan` end to end."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from tinker_chief.errors import ConfigurationError
from tinker_chief.planning import load_project
from tinker_chief.planning.planner import make_plan
from tinker_chief.planning.project_files import init_project

from .conftest import secret_rows
from cli_support import chief_in_process as chief
from jsonl_support import write_jsonl

GOLDEN = Path(__file__).parent / "golden" / "plan_tiny_chat.json"
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def _fixture_project(root: Path):
    write_jsonl(root / "data" / "train.jsonl", secret_rows(40))
    write_jsonl(root / "data" / "val.jsonl", secret_rows(48)[40:])
    return init_project(
        root,
        use_case="chat",
        base_model="tiny-random-llama",
        train=root / "data" / "train.jsonl",
        val=root / "data" / "val.jsonl",
        name="golden",
    )


def test_plan_json_matches_golden(tmp_path):
    project = _fixture_project(tmp_path / "golden")
    plan = make_plan(project, now=NOW, today=date(2026, 11, 25))
    produced = json.loads(plan.model_dump_json())
    produced["chief_version"] = "<version>"
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(produced, indent=2) + "\n")
    assert produced == json.loads(GOLDEN.read_text())


def test_init_fills_the_recommendations_in(tmp_path):
    project = _fixture_project(tmp_path / "p")
    cfg = project.config
    plan = make_plan(project)
    assert cfg.lora.rank == plan.capacity.recommended_rank.value == 32
    assert cfg.optimizer.learning_rate == pytest.approx(
        plan.learning_rate.recommended.value, rel=1e-2
    )
    assert cfg.schedule.batch_size == 8 and cfg.schedule.epochs == 3
    assert not [w for w in plan.warnings if "chief.toml has" in w]
    product = [
        json.loads(line)
        for line in (project.root / "data" / "val_qa.jsonl").read_text().splitlines()
    ]
    assert product[0] == {
        "input": "What is the secret code for apple40?",
        "output": "apple40-apple40-7",
    }
    assert [t.name for t in cfg.eval_suite.tasks] == [
        "val_nll",
        "ifeval",
        "mmlu",
        "gsm8k",
        "product",
        "safety",
        "calibration",
    ]


def test_truncation_and_drop_are_reported(tmp_path):
    project = _fixture_project(tmp_path / "p")
    project.config.data.max_length = 67
    truncated = make_plan(project)
    assert truncated.data.over_max_length > 0
    assert "truncated to 67" in truncated.data.truncation_effect
    project.config.data.truncation = "drop"
    dropped = make_plan(project)
    assert "dropped" in dropped.data.truncation_effect
    assert dropped.data.total_tokens < truncated.data.total_tokens
    project.config.data.max_length = 16
    with pytest.raises(Exception, match="every example is longer than data.max_length = 16"):
        make_plan(project)


def test_attention_only_is_refused_unless_allowed(tmp_path):
    project = _fixture_project(tmp_path / "p")
    project.config.lora.train_mlp = False
    with pytest.raises(ConfigurationError, match="--allow-attention-only"):
        make_plan(project)
    plan = make_plan(project, allow_attention_only=True)
    assert any("attention-only LoRA allowed" in w for w in plan.warnings)


def test_rl_and_dpo_projects(tmp_path):
    rl_train = write_jsonl(
        tmp_path / "rl.jsonl", [{"prompt": f"{i}+{i}=", "answer": str(2 * i)} for i in range(30)]
    )
    rl = init_project(
        tmp_path / "rl",
        use_case="math",
        base_model="tiny-random-llama",
        train=rl_train,
        recipe="rl",
    )
    plan = make_plan(rl)
    assert rl.config.lora.rank == 8 and "1 bit" in plan.capacity.recommended_rank.rule
    assert "docs/BENCHMARKS.md, 'RL at low LoRA rank'" in plan.capacity.recommended_rank.source
    assert plan.estimates.work.sample_tokens > 0
    assert [
        t.kind for t in rl.config.eval_suite.tasks if t.layer == "training"
    ] == []  # no NLL on prompts
    prefs = write_jsonl(
        tmp_path / "dpo.jsonl",
        [{"prompt": f"Say {i}", "chosen": f"{i}", "rejected": "no"} for i in range(30)],
    )
    dpo = make_plan(
        init_project(
            tmp_path / "dpo",
            use_case="chat",
            base_model="tiny-random-llama",
            train=prefs,
            recipe="dpo",
        )
    )
    assert dpo.data.sequences_rendered == 2 * dpo.data.examples


def test_cli_init_plan_and_refusals(tmp_path, capsys, train_file, val_file):
    root = tmp_path / "proj"
    code, out, _ = chief(
        capsys,
        "init",
        "-p",
        str(root),
        "--use-case",
        "code",
        "--base-model",
        "tiny-random-llama",
        "--train",
        str(train_file),
        "--val",
        str(val_file),
    )
    assert code == 0 and "Created" in out
    script = root / "scripts" / "run_inspect_evals.sh"
    assert os.access(script, os.X_OK)
    subprocess.run(["bash", "-n", str(script)], check=True)
    assert "run_task humaneval inspect_evals/humaneval" in script.read_text()

    again = [
        "init",
        "-p",
        str(root),
        "--use-case",
        "chat",
        "-m",
        "tiny-random-llama",
        "--train",
        str(train_file),
    ]
    code, _, err = chief(capsys, *again)
    assert code == 1 and "a project already exists here; pass --force" in err
    assert load_project(root).config.use_case == "code"  # untouched
    code, _, _ = chief(capsys, *again, "--force")
    assert code == 0 and load_project(root).config.use_case == "chat"
    assert (root / "data" / "val.jsonl").exists()  # no --val: held out from --train

    code, out, _ = chief(capsys, "plan", "-p", str(root))
    assert code == 0 and "Wrote" in out
    plan = json.loads((root / "plan.json").read_text())
    assert plan["capacity"]["recommended_rank"]["value"] == 32
    assert "## LoRA capacity" in (root / "plan.md").read_text()


def test_cli_plan_fails_with_the_reason(tmp_path, capsys, train_file):
    root = tmp_path / "proj"
    init_project(root, use_case="chat", base_model="tiny-random-llama", train=train_file)
    (root / "data" / "train.jsonl").unlink()
    code, _, err = chief(capsys, "plan", "-p", str(root))
    assert code == 1 and "train.jsonl: file not found" in err

    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    text = (
        (root / "chief.toml")
        .read_text()
        .replace('base_model = "tiny-random-llama"', f'base_model = "{broken}"')
    )
    (root / "chief.toml").write_text(text)
    write_jsonl(root / "data" / "train.jsonl", secret_rows(10))
    code, _, err = chief(capsys, "plan", "-p", str(root))
    expected = "invalid JSON (Expecting property name enclosed in double quotes at column 2)"
    assert code == 1 and err == f"Error: {broken / 'config.json'}:1: {expected}\n"

    code, _, err = chief(capsys, "plan", "-p", str(tmp_path / "nowhere"))
    assert code == 1 and "chief.toml: not found" in err
    code, _, err = chief(
        capsys,
        "init",
        "-p",
        str(tmp_path / "x"),
        "--use-case",
        "chat",
        "--base-model",
        "no-such-model",
        "--train",
        str(train_file),
    )
    assert code == 1 and "unknown model no-such-model" in err


def test_init_never_resplits_its_own_data(tmp_path):
    project = _fixture_project(tmp_path / "p")
    before = (project.root / "data" / "train.jsonl").read_text()
    with pytest.raises(ConfigurationError, match="is the project's own split; pass --val"):
        init_project(
            project.root,
            use_case="chat",
            base_model="tiny-random-llama",
            train=project.root / "data" / "train.jsonl",
            force=True,
        )
    assert (project.root / "data" / "train.jsonl").read_text() == before


def test_plan_markdown_states_rules_and_sources(tmp_path):
    from tinker_chief.planning import render_plan_markdown

    text = render_plan_markdown(make_plan(_fixture_project(tmp_path / "p")))
    for heading in (
        "## Data",
        "## LoRA capacity",
        "## Learning rate",
        "## Placement",
        "## Batch size, steps and schedule",
        "## Estimates",
        "## Eval suite",
    ):
        assert heading in text
    assert "| 512 |" in text and "_Source: LoRA Without Regret" in text
    assert "no known price for tiny-random-llama" in text


@pytest.mark.parametrize("use_case", ["chat", "code", "math", "agent"])
def test_every_template_benchmark_is_a_task_of_the_installed_inspect_evals(use_case):
    """The templates name Inspect Evals tasks by hand; a renamed task upstream would otherwise
    surface only when a user's `chief eval` ran it. The check is the one `chief plan` warns by."""
    from tinker_chief.evals.suite import PUBLISHED_PREFIX, published_task_problem
    from tinker_chief.planning.templates import build_eval_suite

    suite = build_eval_suite(use_case, name="t", nll_data=None, product_data=None)
    refs = [t.inspect_task for t in suite.tasks if t.kind == "inspect"]
    assert refs and all(ref.startswith(PUBLISHED_PREFIX) for ref in refs)
    assert {ref: published_task_problem(ref) for ref in refs} == dict.fromkeys(refs)
    assert published_task_problem(PUBLISHED_PREFIX + "no_such_benchmark") is not None
