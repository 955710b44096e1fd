"""Benchmark the registry: record 1,000 models x 100 metrics with per-sample outcomes, then
compare two models and export MODEL_REGISTRY.md / JSON; report times and the database size.

Baseline, measured in the same run: the same rows written naively, one transaction (commit)
per row, for the first `--baseline-models` models; the ratio is per model recorded.

    python bench/registry.py  # 1000 models, 10 tasks x 10 metrics, 100 samples/task
    python bench/registry.py --models 100 --samples 50
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
import time
from pathlib import Path

from tinker_chief.registry import (
    MetricValue,
    Registry,
    SampleOutcome,
    SuiteRequirement,
    TaskRequirement,
)

TASKS, METRICS_PER_TASK = 10, 10


def eval_payload(
    model_index: int, task: int, samples: int
) -> tuple[list[MetricValue], list[SampleOutcome]]:
    """Deterministic metrics and outcomes; even tasks are pass/fail, odd ones scored."""
    metrics = [
        MetricValue(f"m{k}", ((model_index * 7 + task * 3 + k) % 100) / 100, 0.0, 1.0, samples)
        for k in range(METRICS_PER_TASK)
    ]
    outcomes = []
    for s in range(samples):
        score = ((model_index * 31 + task * 17 + s * 13) % 97) / 96
        outcomes.append(
            SampleOutcome(f"t{task}-s{s:04d}", score, score > 0.4 if task % 2 == 0 else None)
        )
    return metrics, outcomes


def record_batched(reg: Registry, models: int, samples: int) -> float:
    start = time.perf_counter()
    for i in range(models):
        m = reg.register_model(
            f"model-{i // 10}",
            base_model="SmolLM2-135M-Instruct-Q4_1",
            lora={"rank": 8},
            optimizer={"name": "adamw", "lr": 5e-4},
            config={"seed": i},
        )
        for task in range(TASKS):
            metrics, outcomes = eval_payload(i, task, samples)
            reg.record_eval(
                m.ref,
                suite_name="bench",
                suite_version="v1",
                task=f"task{task}",
                metrics=metrics,
                samples=outcomes,
                headline_metric="m0",
            )
    return time.perf_counter() - start


def record_naive(path: Path, models: int, samples: int) -> float:
    """The same rows, one autocommitted INSERT per row (what a careless store would do)."""
    Registry.open(path).close()  # same schema
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    start = time.perf_counter()
    for i in range(models):
        model_id = db.execute(
            "INSERT INTO models "
            "(name, version, display_name, backend, base_model, recipe, created_at) "
            "VALUES (?, ?, ?, 'local', 'b', 'sl', 'now')",
            (f"model-{i // 10}", i % 10 + 1, "x"),
        ).lastrowid
        db.execute(
            "INSERT INTO status_history (model_id, to_status, at, actor) "
            "VALUES (?, 'candidate', 'now', 'b')",
            (model_id,),
        )
        for task in range(TASKS):
            metrics, outcomes = eval_payload(i, task, samples)
            run_id = db.execute(
                "INSERT INTO eval_runs "
                "(model_id, suite_name, suite_version, task, status, started_at) "
                "VALUES (?, 'bench', 'v1', ?, 'finished', 'now')",
                (model_id, f"task{task}"),
            ).lastrowid
            for m in metrics:
                db.execute(
                    "INSERT INTO metrics VALUES (?,?,?,?,?,?)",
                    (run_id, m.name, m.value, 0.0, 1.0, samples),
                )
            for o in outcomes:
                db.execute(
                    "INSERT INTO samples VALUES (?,?,?,?,NULL)",
                    (run_id, o.sample_id, o.score, o.passed),
                )
    elapsed = time.perf_counter() - start
    db.close()
    return elapsed


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument(
        "--samples", type=int, default=100, help="Per-sample outcomes per task (10 tasks)."
    )
    parser.add_argument("--baseline-models", type=int, default=20)
    parser.add_argument(
        "--dir", type=Path, help="Where to put the databases [default: a temp dir]."
    )
    args = parser.parse_args()
    workdir = args.dir or Path(tempfile.mkdtemp(prefix="chief-bench-registry-"))
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "registry.db"
    for leftover in workdir.glob("*.db*"):
        leftover.unlink()

    reg = Registry.open(path)
    batched = record_batched(reg, args.models, args.samples)
    naive = record_naive(workdir / "naive.db", args.baseline_models, args.samples)
    refs = [m.ref for m in reg.list_models()]
    suite = SuiteRequirement(
        name="bench",
        version="v1",
        tasks=[TaskRequirement(name=f"task{t}", headline_metric="m0") for t in range(TASKS)],
    )
    comparison, t_compare = timed(lambda: reg.compare([refs[0], refs[-1]]))
    gate, t_gate = timed(lambda: reg.check_promotion(refs[-1], "prod", suite=suite))
    markdown, t_md = timed(lambda: reg.export_markdown(suite=suite))
    doc, t_json = timed(lambda: json.dumps(reg.export_json(suite=suite)))
    reg._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    reg.close()
    size = sum(p.stat().st_size for p in workdir.glob("registry.db*"))

    per_model_batched = batched / args.models
    per_model_naive = naive / args.baseline_models
    rows = args.models * (2 + 2 * TASKS + TASKS * METRICS_PER_TASK + TASKS * args.samples)
    print(
        f"models={args.models} metrics/model={TASKS * METRICS_PER_TASK} "
        f"samples/model={TASKS * args.samples} rows~{rows:,}"
    )
    print(
        f"record (one transaction per model/eval): {batched:.2f} s total, "
        f"{per_model_batched * 1000:.1f} ms/model"
    )
    print(
        f"baseline (one transaction per row, {args.baseline_models} models): "
        f"{per_model_naive * 1000:.1f} ms/model -> "
        f"{per_model_naive / per_model_batched:.1f}x slower"
    )
    print(
        f"compare 2 models ({len(comparison.rows)} metrics, "
        f"{sum(1 for r in comparison.rows if r.tests[1])} paired tests): {t_compare * 1000:.0f} ms"
    )
    print(f"gate check ({len(gate.reasons)} reasons): {t_gate * 1000:.0f} ms")
    print(
        f"export markdown: {t_md:.2f} s ({len(markdown) / 1e6:.1f} MB); "
        f"export json: {t_json:.2f} s ({len(doc) / 1e6:.1f} MB)"
    )
    print(f"database size: {size / 1e6:.1f} MB ({path})")


if __name__ == "__main__":
    main()
