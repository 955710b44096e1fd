"""`chief sweep` + `chief select` on the demo skill: LR sweep around the plan, then the selection.

The demo project (`demo.create_demo_project`: the secret-code skill, planned by the planner and
narrowed to the CPU budget as `chief demo` narrows it), `chief plan`'s plan.json (for get_lr's
value), one local engine, a sweep of `--lr-multipliers` around the planned LR (all runs at once
on that engine, sharing its one base model), then `chief select` with the project's suite on the
shortlist. Prints the sweep's points, where the best LR fell (per rank, vs the plan and get_lr),
the aggregate training tokens/s, the selection and each stage's wall time; `--write` puts the
result into docs/BENCHMARKS.md's `sweep` block.

Usage: python bench/sweep_demo.py [--model SmolLM2-135M-Instruct-Q4_1] [--lr-multipliers 0.5,1,2,4]
                                  [--steps N] [--shortlist 2] [--write]
"""

from __future__ import annotations

import argparse
import datetime
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from doc_blocks import publish  # noqa: E402
from engine_common import load_average, machine  # noqa: E402


def main() -> None:
    from tinker_chief.planning import make_plan
    from tinker_chief.planning.project_files import write_plan_files
    from tinker_chief.runfiles import RunFiles
    from tinker_chief.workflows.demo.scaffold import create_demo_project
    from tinker_chief.workflows.selection import select
    from tinker_chief.workflows.sweeping import run_sweep, start_sweep, summarize

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="Base model (default: the demo's).")
    parser.add_argument("--lr-multipliers", default="0.5,1,2,4")
    parser.add_argument(
        "--steps", type=int, default=None, help="Cap each run's steps (default: the demo's)."
    )
    parser.add_argument("--shortlist", type=int, default=2)
    parser.add_argument(
        "--write", action="store_true", help="Write the result into docs/BENCHMARKS.md."
    )
    args = parser.parse_args()
    multipliers = [float(m) for m in args.lr_multipliers.split(",")]

    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
        started = time.perf_counter()
        demo = create_demo_project(Path(tmp) / "demo", max_steps=args.steps, base_model=args.model)
        project = demo.project
        write_plan_files(project, make_plan(project))
        planned = time.perf_counter()
        with project.connect(project.backend_choice("local")) as connection:
            sweep = start_sweep(project, lr_multipliers=multipliers)
            sweep_started = time.perf_counter()
            run_sweep(project, sweep, connection)
            swept = time.perf_counter()
            chosen = select(project, connection, sweep_id=sweep.sweep_id, shortlist=args.shortlist)
            selected = time.perf_counter()
        tokens = sum(
            row.get("train/tokens", 0)
            for p in sweep.points
            if p.run_id
            for row in RunFiles(project.paths.run(p.run_id).dir).metrics()
        )
    lines = [
        f"{datetime.date.today()}, `python bench/sweep_demo.py "
        f"--lr-multipliers {args.lr_multipliers}"
        f"{f' --steps {args.steps}' if args.steps else ''}`: {machine()}.",
        f"Demo project on {project.config.base_model} (rank {sweep.planned_rank}, "
        f"planned LR {sweep.planned_lr:.3g}, get_lr {sweep.get_lr:.3g}), "
        f"{len(sweep.points)} runs at once on one local engine, "
        f"then `chief select` (shortlist {args.shortlist}, the demo's suite).",
        "",
        "| point | LR | steps | final val NLL | final train loss | status |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {p.name} | {p.learning_rate:.3g} | {p.steps_done} | "
        f"{'-' if p.final_val_nll is None else f'{p.final_val_nll:.4f}'} | "
        f"{'-' if p.final_loss is None else f'{p.final_loss:.4f}'} | {p.status} |"
        for p in sweep.points
    ]
    lines += [
        "",
        *[f"- {line}" for line in summarize(sweep)["lines"]],
        f"- selection: {chosen.chosen.ref} ({chosen.chosen.label}): {chosen.reason}",
        f"- wall time: init + plan {planned - started:.0f} s, sweep {swept - sweep_started:.0f} s "
        f"({tokens:,} training tokens in all: "
        f"{tokens / (swept - sweep_started):.0f} tokens/s aggregate, "
        f"inline NLL evals and checkpoints included), select {selected - swept:.0f} s",
        f"- {load_average()}",
    ]
    publish(lines, "sweep", args.write)


if __name__ == "__main__":
    main()
