"""RL at low LoRA rank on chief's engine: the doctrine's two RL claims, measured.

"RL works at very low rank" (RL carries about one bit per episode, so rank 1 holds what a run
learns) and "trade lower rank for more steps". One arithmetic task (200 prompts such as "What is
3 + 4? Reply with only the number.", made here, plus 40 held-out ones drawn the same way: with
81 possible sums most of them also occur in training), one project per point
made by `chief init` (`planning.project_files.init_project`: the plan's learning rate, the numeric
grader, every other setting as init writes it) with only the rank, the steps and `[rl]
max_tokens` changed; each point trains with `training.train_project` against one local engine
started once, all points at once on it (they share its one base model). Same seed everywhere, so
every point sees the same prompts in the same order. Prints each step's mean reward per point
(the reward curves side by side) and a table: rank, steps, mean reward of the first and last
quarter of the steps, and the final checkpoint's held-out reward (greedy answers to the 40
held-out prompts, graded as the rollouts are: `chief select`'s measure). `--write` puts the result
into docs/BENCHMARKS.md's `rl-rank` block.

Usage: python bench/rl_rank.py [--model SmolLM2-135M-Instruct-Q4_1] [--ranks 1,8,32] [--steps 12]
                               [--long-rank 1] [--write]
"""

from __future__ import annotations

import argparse
import datetime
import json
import random
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from doc_blocks import publish  # noqa: E402
from engine_common import load_average, machine  # noqa: E402

TRAIN_PROMPTS, HELDOUT_PROMPTS = 200, 40
MAX_TOKENS = 8


def arithmetic(n: int, rng: random.Random) -> list[dict[str, str]]:
    """Sums of two digits 1-9. SmolLM2-135M gets about a quarter right at temperature 1 within 8
    tokens (it often starts "To solve this..."), so most groups carry signal; two-digit operands
    gave 0 reward and no signal at all at 8 tokens (`chief plan --probe-rewards`)."""
    rows = []
    for _ in range(n):
        a, b = rng.randint(1, 9), rng.randint(1, 9)
        rows.append(
            {"prompt": f"What is {a} + {b}? Reply with only the number.", "answer": str(a + b)}
        )
    return rows


def write_jsonl(path: Path, rows: list[dict[str, str]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def make_point(root: Path, data: Path, model: str, rank: int, steps: int) -> Any:
    from tinker_chief.planning import save_project
    from tinker_chief.planning.project_files import init_project

    project = init_project(
        root,
        use_case="math",
        base_model=model,
        train=data / "train.jsonl",
        val=data / "heldout.jsonl",
        recipe="rl",
        name=f"rank{rank}-{steps}steps",
    )
    config = project.config
    config.lora.rank = rank
    config.schedule.steps = steps
    config.rl.max_tokens = MAX_TOKENS
    save_project(project)
    return project


def reward_curve(run_dir: Path) -> list[float]:
    from tinker_chief.training.runlog import RunLog

    return [float(r["train/reward"]) for r in RunLog(run_dir).metrics() if "train/reward" in r]


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def main() -> None:
    from tinker_chief.connection import choose_backend, open_connection
    from tinker_chief.models import DEFAULT_MODEL
    from tinker_chief.training import train_project
    from tinker_chief.training.from_project import spec_from_project
    from tinker_chief.training.session import prepare
    from tinker_chief.workflows.reward_probe import HeldOutReward

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--ranks", default="1,8,32", help="LoRA ranks, each trained --steps steps.")
    parser.add_argument("--steps", type=int, default=12, help="Steps of each rank's run.")
    parser.add_argument(
        "--long-rank",
        type=int,
        default=1,
        help="This rank again with 2x --steps (0: no such point).",
    )
    parser.add_argument(
        "--write", action="store_true", help="Write the result into docs/BENCHMARKS.md."
    )
    args = parser.parse_args()
    points = [(int(r), args.steps) for r in args.ranks.split(",")]
    if args.long_rank:
        points.append((args.long_rank, 2 * args.steps))
    rng = random.Random(0)

    with tempfile.TemporaryDirectory(prefix="bench-rl-rank-") as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        write_jsonl(data / "train.jsonl", arithmetic(TRAIN_PROMPTS, rng))
        write_jsonl(data / "heldout.jsonl", arithmetic(HELDOUT_PROMPTS, rng))
        projects = [
            make_point(Path(tmp) / f"r{rank}-s{steps}", data, args.model, rank, steps)
            for rank, steps in points
        ]
        first = projects[0].config
        print(
            f"{len(points)} points on {args.model}: "
            f"LR {first.optimizer.learning_rate:g} (the plan's), "
            f"{first.rl.groups_per_batch} groups x {first.rl.group_size} rollouts, "
            f"max_tokens {MAX_TOKENS}, grader {first.rl.grader}, seed {first.seed}",
            flush=True,
        )
        results: dict[int, Any] = {}
        started = time.perf_counter()
        with open_connection(
            choose_backend("local"), state_dir=Path(tmp) / "engine", models=[args.model]
        ) as connection:
            # created once, shared by every thread (as chief sweep does)
            connection.service_client()

            def run(i: int) -> None:
                try:
                    results[i] = train_project(projects[i], connection=connection)
                except Exception as exc:  # one failed point is reported; the others go on
                    results[i] = exc
                print(
                    f"point {points[i]} done after {time.perf_counter() - started:.0f} s",
                    flush=True,
                )

            threads = [threading.Thread(target=run, args=(i,)) for i in range(len(points))]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            trained = time.perf_counter()
            heldout = HeldOutReward(
                prepare(spec_from_project(projects[0]), projects[0].root), connection
            )
            base = mean(heldout(None))
            finals = {
                i: mean(heldout(r.final.sampler_path))
                for i, r in results.items()
                if not isinstance(r, Exception)
            }
        evaluated = time.perf_counter()
        curves = {
            i: reward_curve(r.run_dir) for i, r in results.items() if not isinstance(r, Exception)
        }

    quarter = max(1, args.steps // 4)
    names = [f"rank {rank}, {steps} steps" for rank, steps in points]
    lines = [
        f"{datetime.date.today()}, `python bench/rl_rank.py --ranks {args.ranks} "
        f"--steps {args.steps} --long-rank {args.long_rank}`: {machine()}.",
        f'{args.model}, {TRAIN_PROMPTS} prompts "What is a + b? Reply with only the number." '
        f"(digits 1-9; {HELDOUT_PROMPTS} more held out), `chief init --recipe rl` settings: "
        f"LR {first.optimizer.learning_rate:g}, "
        f"{first.rl.groups_per_batch} groups x {first.rl.group_size} rollouts a step, "
        f"temperature {first.rl.temperature:g}, grader `{first.rl.grader}`, "
        f"{first.rl.loss_fn}; max_tokens {MAX_TOKENS}, seed {first.seed} for every point; "
        "all points at once on one local engine.",
        "",
        f"| rank | steps | reward, first {quarter} steps | reward, last {quarter} steps | "
        f"held-out reward, final ({HELDOUT_PROMPTS} prompts, greedy) | status |",
        "|---|---|---|---|---|---|",
        f"| base model | 0 | - | - | {base:.3f} | - |",
    ]
    for i, (rank, steps) in enumerate(points):
        result = results.get(i)
        if isinstance(result, Exception) or result is None:
            lines.append(f"| {rank} | {steps} | - | - | - | failed: {result} |")
            continue
        curve = curves[i]
        lines.append(
            f"| {rank} | {len(curve)} | {mean(curve[:quarter]):.3f} | "
            f"{mean(curve[-quarter:]):.3f} | {finals[i]:.3f} | {result.status} |"
        )
    longest = max((len(c) for c in curves.values()), default=0)
    lines += [
        "",
        "Mean reward per step (the reward curves):",
        "",
        "| step | " + " | ".join(names) + " |",
    ]
    lines.append("|---" * (len(names) + 1) + "|")
    for step in range(longest):
        cells = [
            f"{curves[i][step]:.3f}" if i in curves and step < len(curves[i]) else ""
            for i in range(len(points))
        ]
        lines.append(f"| {step + 1} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"- wall time: training {trained - started:.0f} s (all points at once), held-out evals "
        f"{evaluated - trained:.0f} s",
        f"- {load_average()}",
    ]
    publish(lines, "rl-rank", args.write)


if __name__ == "__main__":
    main()
