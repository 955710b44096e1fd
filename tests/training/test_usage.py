"""What a run spends, recorded as it runs: tokens trained, prefilled and sampled per step in
metrics.jsonl, and per model version in the registry, on the tiny model through the real SDK
and engine (the same counts a Tinker run records; on the local engine the cost is machine time)."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from tests.training.conftest import make_project, only_run
from tinker_chief.cli.main import cli
from tinker_chief.planning import load_project
from tinker_chief.registry import Registry
from tinker_chief.training import spec_from_project, train_project
from tinker_chief.training.loop import batch_indices
from tinker_chief.training.session import prepare

from jsonl_support import read_jsonl, write_jsonl


def test_sft_steps_and_versions_record_the_tokens_they_trained_and_prefilled(
    tmp_path: Path, engine
) -> None:
    project = make_project(tmp_path)
    result = CliRunner().invoke(
        cli, ["train", "--project", str(project), "--base-url", engine.base_url]
    )
    assert result.exit_code == 0, result.output
    rows = read_jsonl(only_run(project) / "metrics.jsonl")
    spec = spec_from_project(load_project(project))
    prepared = prepare(spec, project)
    datums = prepared.train_items
    train_rows = [r for r in rows if "train/loss" in r]
    for (
        row
    ) in train_rows:  # trained tokens are exactly the batch's datums' tokens; SFT samples nothing
        batch = batch_indices(len(datums), spec.batch_size, spec.seed, row["step"] - 1)
        assert row["train/tokens"] == sum(datums[i].model_input.length for i in batch)
        assert row["prefill/tokens"] == 0 and row["sample/tokens"] == 0
    # Validation NLL prefills each held-out datum's whole sequence (its input plus the last target)
    # and samples one token per sequence (compute_logprobs is a sample of max_tokens=1).
    val_prefill, val_sample = (
        sum(d.model_input.length + 1 for d in prepared.val_data),
        len(prepared.val_data),
    )
    eval_rows = [r for r in rows if "val/nll" in r]
    assert [(r["prefill/tokens"], r["sample/tokens"]) for r in eval_rows] == [
        (val_prefill, val_sample)
    ] * 3
    assert all(r["time/eval_s"] > 0 for r in eval_rows)

    with Registry.open(project / ".chief" / "registry.db", create=False) as registry:
        versions = {m.training_step: m.usage for m in registry.list_models()}
    # A version costs what the run spent up to its checkpoint: steps 1-2 and the baseline eval for
    # v1.
    assert versions[2].train_tokens == sum(r["train/tokens"] for r in train_rows[:2])
    assert versions[2].prefill_tokens == val_prefill and versions[2].sample_tokens == val_sample
    assert versions[6].train_tokens == sum(r["train/tokens"] for r in train_rows)
    assert (
        versions[6].prefill_tokens == 2 * val_prefill
    )  # the step-6 eval runs after the final checkpoint
    assert versions[6].machine_seconds >= versions[2].machine_seconds > 0

    shown = CliRunner().invoke(cli, ["registry", "show", "tiny:v3", "--project", str(project)])
    assert shown.exit_code == 0, shown.output
    assert (
        f"cost to make: {versions[6].train_tokens:,} tokens trained, "
        f"{versions[6].prefill_tokens:,} prefilled, {versions[6].sample_tokens:,} sampled"
    ) in shown.output
    assert "local engine" in shown.output and "no Tinker bill" in shown.output


def test_rl_steps_record_what_their_rollouts_prefilled_and_sampled(tmp_path: Path, engine) -> None:
    short = {
        "schedule": {"batch_size": 4, "steps": 2},
        "checkpoints": {"every_steps": 0},
        "inline_evals": {"nll_every_steps": 0},
        "data": {"val": None},
    }
    project = make_project(
        tmp_path, recipe="rl", rl={"group_size": 3, "groups_per_batch": 2, "max_tokens": 6}, **short
    )
    write_jsonl(
        project / "data" / "train.jsonl",
        [{"prompt": f"Say {i}", "answer": str(i)} for i in range(4)],
    )
    result = train_project(load_project(project), base_url=engine.base_url)
    rows = [r for r in read_jsonl(result.run_dir / "metrics.jsonl") if "train/loss" in r]
    assert len(rows) == 2
    spec = spec_from_project(load_project(project))
    prepared = prepare(spec, project)
    for row in rows:
        # 2 prompts, each prefilled once for its group of 3 samples of at most 6 tokens
        batch = batch_indices(
            len(prepared.train_items), spec.batch_size, spec.seed, row["step"] - 1
        )
        prompts = [
            prepared.renderer.build_generation_prompt(prepared.train_items[i].prompt) for i in batch
        ]
        assert row["prefill/tokens"] == sum(p.length for p in prompts)
        assert 0 < row["sample/tokens"] <= 2 * 3 * 6
        # each datum is prompt + sampled tokens, shifted by one: the batch trains on what was
        # sampled
        assert row["train/tokens"] >= row["sample/tokens"]
    with Registry.open(project / ".chief" / "registry.db", create=False) as registry:
        usage = registry.get_model("tiny").usage
    assert usage.sample_tokens == sum(r["sample/tokens"] for r in rows)
    assert usage.prefill_tokens == sum(r["prefill/tokens"] for r in rows)
