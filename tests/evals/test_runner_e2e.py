"""`run_suite` end to end: every task kind, registry records, and resume without redoing samples."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tinker_chief.evals.runner import run_suite
from tinker_chief.evals.suite import EvalSettings, EvalSuite, EvalTask
from tinker_chief.registry import Registry

from jsonl_support import write_jsonl

TINY = "tiny-random-llama"


class Counting:
    def __init__(self):
        self.advanced: dict[str, int] = {}

    def start(self, task, total, done):
        self.advanced.setdefault(task, 0)

    def advance(self, task, n=1):
        self.advanced[task] = self.advanced.get(task, 0) + n

    def finish(self, task, outcome):
        pass


def make_suite(project: Path) -> EvalSuite:
    write_jsonl(
        project / "conv.jsonl",
        [
            {
                "messages": [
                    {"role": "user", "content": f"hi {i}"},
                    {"role": "assistant", "content": f"hello {i}"},
                ]
            }
            for i in range(3)
        ],
    )
    write_jsonl(
        project / "qa.jsonl",
        [{"input": f"{i}+1?", "output": str(i + 1), "id": f"q{i}"} for i in range(6)],
    )
    short = EvalSettings(max_tokens=3, limit=1)
    return EvalSuite(
        name="smoke",
        tasks=[
            EvalTask(
                name="val_nll",
                layer="training",
                kind="nll",
                data="conv.jsonl",
                headline_metric="nll",
            ),
            EvalTask(
                name="product",
                layer="product",
                kind="jsonl",
                data="qa.jsonl",
                grader="numeric",
                settings=EvalSettings(max_tokens=3),
            ),
            EvalTask(
                name="safety",
                layer="safety",
                kind="safety",
                settings=short,
                headline_metric="refusal_rate",
            ),
            EvalTask(
                name="calibration",
                layer="calibration",
                kind="calibration",
                settings=EvalSettings(limit=4),
                headline_metric="brier",
            ),
            EvalTask(
                name="gsm8k", layer="benchmark", kind="inspect", inspect_task="inspect_evals/gsm8k"
            ),
        ],
    )


def test_suite_runs_records_and_resumes(connection, tmp_path):
    suite = make_suite(tmp_path)
    with Registry.open(tmp_path / ".chief" / "registry.db") as registry:
        first = run_suite(suite, TINY, connection, project_dir=tmp_path, registry=registry)
        by_name = {t.task: t for t in first.tasks}
        # The benchmark has no staged data: reported as a failure, the rest still ran.
        assert [t.task for t in first.failed] == ["gsm8k"]
        assert "run `chief benchmarks stage gsm8k --from FILE`" in by_name["gsm8k"].error
        assert (
            by_name["val_nll"].metrics["nll"]["value"] > 0
            and by_name["val_nll"].metrics["bpb"]["value"] > 0
        )
        assert (
            by_name["product"].metrics["accuracy"]["n"]
            + by_name["product"].metrics["unscored"]["value"]
            == 6
        )
        assert (
            by_name["safety"].ran_samples == 5
        )  # limit=1 per category: harmful, 3 jailbreaks, benign
        calibration = by_name["calibration"]
        assert (
            0.0 <= calibration.metrics["ece"]["value"] <= 1.0
            and calibration.metrics["accuracy"]["n"] == 4
        )
        assert len(calibration.settings["reliability"]) == 15
        for name in ("ece", "brier", "mean_confidence", "overconfidence", "underconfidence"):
            m = calibration.metrics[name]
            assert m["ci_low"] <= m["value"] <= m["ci_high"] and m["n"] == 4, (name, m)
        for name in ("nll", "bpb"):
            m = by_name["val_nll"].metrics[name]
            assert m["ci_low"] <= m["value"] <= m["ci_high"] and m["n"] == 3, (name, m)

        runs = registry.eval_runs(first.model_ref)
        assert {r.task for r in runs} == {"val_nll", "product", "safety", "calibration"}
        assert {r.suite_version for r in runs} == {suite.version}
        assert {r.settings["engine_precision"] for r in runs} <= {"float32", "bfloat16-autocast"}
        assert (
            len({r.settings["engine_precision"] for r in runs}) == 1
        )  # recorded with every result
        product_run = next(r for r in runs if r.task == "product")
        assert sorted(s.sample_id for s in registry.samples(product_run.id)) == [
            f"q{i}" for i in range(6)
        ]
        # Calibration outcomes are per-question Brier scores, not pass/fail: the gate bootstraps
        # them.
        cal_run = next(r for r in runs if r.task == "calibration")
        cal_samples = registry.samples(cal_run.id)
        assert len(cal_samples) == 4 and all(s.passed is None for s in cal_samples)
        assert sum(s.score for s in cal_samples) / 4 == pytest.approx(
            calibration.metrics["brier"]["value"]
        )
        nll_samples = registry.samples(next(r for r in runs if r.task == "val_nll").id)
        assert len(nll_samples) == 3 and all(s.passed is None and s.score > 0 for s in nll_samples)

        # Simulate a crash mid-task: product lost its finished marker and its last 2 samples.
        cache_dir = next((tmp_path / ".chief" / "eval-cache").iterdir())
        (cache_dir / "product.done.json").unlink()
        lines = (cache_dir / "product.jsonl").read_text().splitlines()
        (cache_dir / "product.jsonl").write_text("\n".join(lines[:4]) + "\n")
        progress = Counting()
        second = run_suite(
            suite,
            TINY,
            connection,
            project_dir=tmp_path,
            registry=registry,
            tasks=["product", "safety"],
            progress=progress,
        )
        product = second.tasks[0]
        assert product.error is None, product.error
        assert (product.reused_samples, product.ran_samples) == (4, 2)
        assert progress.advanced["product"] == 2 and second.tasks[1].reused_task
        assert len(registry.eval_runs(first.model_ref, task="product")) == 2

        assert len(registry.eval_runs(first.model_ref, task="safety")) == 1
        assert json.loads((cache_dir / "product.done.json").read_text())["run_id"] == product.run_id
        # Calibration resumes the same way, and cached questions keep their Brier outcomes.
        (cache_dir / "calibration.done.json").unlink()
        lines = (cache_dir / "calibration.jsonl").read_text().splitlines()
        (cache_dir / "calibration.jsonl").write_text("\n".join(lines[:2]) + "\n")
        third = run_suite(
            suite, TINY, connection, project_dir=tmp_path, registry=registry, tasks=["calibration"]
        )
        resumed = third.tasks[0]
        assert (resumed.reused_samples, resumed.ran_samples) == (2, 2)
        kept = {json.loads(line)["id"] for line in lines[:2]}
        assert resumed.samples.keys() == calibration.samples.keys() and not resumed.binary
        assert {q: resumed.samples[q] for q in kept} == {q: calibration.samples[q] for q in kept}
        # Re-scored questions ran in a smaller batch: on a bf16 engine (`auto` on AMX CPUs) that
        # rounds differently in the last bits, so they agree closely rather than exactly.
        assert resumed.samples == pytest.approx(calibration.samples, abs=1e-3)
