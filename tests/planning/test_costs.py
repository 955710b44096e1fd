"""Cost before and after, through the commands: `chief plan` estimates what evaluating the suite
will prefill and sample (and its dollars at a dated price table), `chief eval` records what it
really used, and the local time estimate is calibrated on this machine (last run, else probe)."""

from __future__ import annotations

import importlib.metadata
import json
import re
from pathlib import Path

from tinker_chief.planning import load_project, parse_config, save_project
from tinker_chief.planning.calibration import machine_id
from tinker_chief.registry import Registry, Usage

from .conftest import secret_rows
from cli_support import chief_in_process as chief
from jsonl_support import read_jsonl, write_jsonl

TINY = "tiny-random-llama"
PRICES = """as_of = "2026-01-15"
source = "a test's own table"
[models."tiny-random-llama"]
train = 0.5
sample = 2.0
prefill = 0.25
"""


def _project(tmp_path: Path, capsys, **estimates: str) -> Path:
    write_jsonl(tmp_path / "train.jsonl", secret_rows(24))
    root = tmp_path / "proj"
    code, _out, err = chief(
        capsys,
        "init",
        "-p",
        str(root),
        "--use-case",
        "math",
        "-m",
        TINY,
        "--train",
        str(tmp_path / "train.jsonl"),
    )
    assert code == 0, err
    config = load_project(root).config.model_dump(mode="json", exclude_none=True)
    for task in config["eval_suite"]["tasks"]:  # small enough to run on the tiny model
        task["settings"].update({"limit": 1, "max_tokens": 8})
    config["estimates"] = estimates
    save_project(root, parse_config(config))
    return root


def _plan(root: Path, capsys, *flags: str) -> dict:
    code, out, err = chief(capsys, "plan", "-p", str(root), *flags)
    assert code == 0, err + out
    return json.loads((root / "plan.json").read_text())


def test_plan_prices_the_eval_suite_and_the_eval_records_what_it_used(
    tmp_path, capsys, engine, monkeypatch
):
    monkeypatch.setenv("COLUMNS", "400")  # rich wraps no line this test reads
    root = _project(tmp_path, capsys, prices_file="prices.toml")
    (root / "prices.toml").write_text(PRICES)
    estimates = _plan(root, capsys)["estimates"]
    evals, cost = estimates["eval_sampling"], estimates["eval_cost"]
    tasks = {t["task"]: t for t in evals["tasks"]}
    assert tasks["safety"]["sample_tokens"] == tasks["safety"]["samples"] * 8
    assert (
        tasks["val_nll"]["sample_tokens"] == tasks["val_nll"]["samples"]
    )  # one per compute_logprobs
    assert cost["source"] == "prices.toml (as of 2026-01-15; a test's own table)"
    assert cost["dollars"] == round(
        (evals["prefill_tokens"] * 0.25 + evals["sample_tokens"] * 2.0) / 1e6, 4
    )
    assert estimates["tinker_cost"]["dollars"] == round(
        estimates["work"]["train_tokens"] * 0.5 / 1e6, 4
    )
    text = (root / "plan.md").read_text()
    assert "Evaluating one model with the suite (Tinker)" in text and "| safety | safety |" in text

    code, out, err = chief(
        capsys,
        "eval",
        TINY,
        "--project",
        str(root),
        "--task",
        "val_nll",
        "--task",
        "safety",
        "--base-url",
        engine.base_url,
        "--json",
    )
    assert code == 0, err + out
    with Registry.open(root / ".chief" / "registry.db", create=False) as registry:
        runs = {r.task: r.usage for r in registry.eval_runs(json.loads(out)["model_ref"])}
    # What the eval prefilled is what the plan counted: the same renderer, the same prompts.
    assert runs["val_nll"].prefill_tokens == tasks["val_nll"]["prefill_tokens"]
    assert (
        runs["val_nll"].sample_tokens
        == tasks["val_nll"]["sample_tokens"]
        == tasks["val_nll"]["samples"]
    )
    assert runs["safety"].prefill_tokens == tasks["safety"]["prefill_tokens"]
    assert 0 < runs["safety"].sample_tokens <= tasks["safety"]["sample_tokens"]
    assert runs["safety"].train_tokens is None and runs["safety"].machine_seconds > 0

    code, out, err = chief(
        capsys, "registry", "show", json.loads(out)["model_ref"], "--project", str(root)
    )
    assert code == 0, err
    used = runs["val_nll"].prefill_tokens + runs["safety"].prefill_tokens
    sampled = runs["val_nll"].sample_tokens + runs["safety"].sample_tokens
    assert f"cost to evaluate: 2 eval run(s): {used:,} prefilled, {sampled:,} sampled" in out

    # A version made on Tinker's cloud is priced at the table's rates, in `registry show` and the
    # report.
    with Registry.open(root / ".chief" / "registry.db") as registry:
        cloud = registry.register_model(
            "cloud-run",
            base_model=TINY,
            backend="tinker",
            usage=Usage(train_tokens=1_000_000, prefill_tokens=400_000, sample_tokens=100_000),
        )
    dollars = "$0.8000"  # 1M x $0.5 + 0.4M x $0.25 + 0.1M x $2.0, per million tokens
    code, out, err = chief(capsys, "registry", "show", cloud.ref, "--project", str(root))
    assert code == 0, err
    assert (
        f"1,000,000 tokens trained, 400,000 prefilled, 100,000 sampled; {dollars} at prices.toml"
        in out
    )
    code, out, err = chief(capsys, "report", "--project", str(root))
    assert code == 0, err
    report = (root / "report.html").read_text()
    assert (
        "<h3>Cost</h3>" in report
        and f"{dollars} at prices.toml (a test&#x27;s own table)" in report
    )
    assert "s of machine time on the local engine (no Tinker bill)" in report


def test_a_suite_task_whose_data_is_missing_is_a_plan_warning(tmp_path, capsys, monkeypatch):
    """`chief plan` names the tasks `chief eval` would fail on, a missing data file and a
    misspelt Inspect Evals task (before, the plan only had no count and exited 0 without a
    word)."""
    monkeypatch.setenv("COLUMNS", "400")  # rich wraps no line this test reads
    root = _project(tmp_path, capsys)
    config = load_project(root).config.model_dump(mode="json", exclude_none=True)
    for task in config["eval_suite"]["tasks"]:
        if task["name"] == "val_nll":
            task["data"] = "data/moved.jsonl"  # a file that is not there
        if task.get("inspect_task") == "inspect_evals/gsm8k":
            task["inspect_task"] = "inspect_evals/gsm9k"  # a typo
            benchmark = task["name"]
    save_project(root, parse_config(config))
    code, out, err = chief(capsys, "plan", "-p", str(root))
    assert code == 0, err
    warning = (
        f"warning: eval task `val_nll`: {root / 'data' / 'moved.jsonl'}: file not found "
        "(`chief eval` fails on this task until it is fixed)"
    )
    assert warning in out, out
    typo = (
        f"warning: eval task `{benchmark}`: the installed Inspect Evals ("
        f"{importlib.metadata.version('inspect-evals')}) has no task `gsm9k`; did you mean "
        "inspect_evals/gsm8k"
    )
    assert typo in out, out
    plan = json.loads((root / "plan.json").read_text())
    warned = [w for w in plan["warnings"] if w.startswith("eval task")]
    assert warning[9:] in warned and len(warned) == 2
    tasks = {t["task"]: t for t in plan["estimates"]["eval_sampling"]["tasks"]}
    assert tasks["val_nll"]["problem"].endswith("moved.jsonl: file not found")
    assert tasks["safety"]["problem"] is None


def test_a_model_without_a_known_price_says_so(tmp_path, capsys):
    estimates = _plan(_project(tmp_path, capsys), capsys)["estimates"]
    for cost in (estimates["tinker_cost"], estimates["eval_cost"]):
        assert cost["dollars"] is None and cost["detail"].startswith(
            f"no known price for {TINY} in prices.toml"
        )
        assert "as of 2025-10-01" in cost["source"]


def test_a_price_table_entry_that_is_not_a_table_is_one_error_line(tmp_path, capsys):
    root = _project(tmp_path, capsys, prices_file="prices.toml")
    (root / "prices.toml").write_text('as_of = "2026-01-15"\n[models]\n"tiny-random-llama" = 0.5\n')
    code, out, err = chief(capsys, "plan", "-p", str(root))
    table = root / "prices.toml"
    assert (code, out) == (1, "")
    assert err == f'Error: {table}: field `models."tiny-random-llama"`: expected a table, got 0.5\n'


def test_local_time_is_calibrated_on_this_machine(
    tmp_path, capsys, engine, monkeypatch, private_calibration_cache
):
    cache = private_calibration_cache
    root = _project(tmp_path, capsys)
    table = _plan(root, capsys)["estimates"]["local_time"]
    assert table["basis"] == "table" and "tok/s (table, float32)" in table["detail"]

    # A probe, when asked for: measured on the engine, cached for this machine and model.
    monkeypatch.setenv("CHIEF_ENGINE_URL", engine.base_url)
    probed = _plan(root, capsys, "--calibrate")["estimates"]["local_time"]
    probe_file = cache / "throughput" / f"{machine_id()}.json"
    rate = json.loads(probe_file.read_text())[TINY]["train_tokens_per_s"]
    # Measured in the precision the engine computed in (the session engine's float32), and says so.
    assert json.loads(probe_file.read_text())[TINY]["precision"] == "float32"
    assert probed["basis"] == "probe"
    assert f"/ {rate:,.0f} tok/s (probe, float32)" in probed["detail"]
    assert (
        _plan(root, capsys)["estimates"]["local_time"]["basis"] == "probe"
    )  # cached: no probe this time

    # The project's own last run on this machine beats the probe.
    code, _out, err = chief(capsys, "train", "--project", str(root), "--base-url", engine.base_url)
    assert code == 0, err
    run_dir = next((root / ".chief" / "runs").iterdir())
    rows = [r for r in read_jsonl(run_dir / "metrics.jsonl") if "train/loss" in r][
        1:
    ]  # step 1 is warm-up
    measured = sum(r["train/tokens"] for r in rows) / sum(r["time/step_s"] for r in rows)
    local = _plan(root, capsys)["estimates"]["local_time"]
    assert local["basis"] == "last run" and run_dir.name in local["source"]
    shown = re.search(r"/ ([\d,]+) tok/s \(last run, float32\)", local["detail"])
    assert shown is not None and abs(int(shown[1].replace(",", "")) - measured) <= 1


def test_a_capped_instruction_set_is_another_machine_for_calibration(monkeypatch):
    """A throughput measured under ONEDNN_MAX_CPU_ISA (or the like) is not this CPU's own speed,
    so its calibration is kept apart; unset (or blank), the machine's id is as before."""
    from tinker_chief.cpuinfo import ISA_CAP_VARIABLES

    for name in ISA_CAP_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    own = machine_id()
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", " ")
    assert machine_id() == own
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_VNNI")
    assert machine_id() != own
