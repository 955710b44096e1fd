"""The cookbook's RL loop on the local engine: speed and reward curve.

Runs `tinker_cookbook.rl.train.main`, unmodified, with the cookbook's arithmetic environment
(`recipes/math_rl/arithmetic_env.ArithmeticDatasetBuilder`: "What is x + y?" with a one-shot
example, reward 1 for the right sum, -0.1 format penalty without a stop sequence) on a real
engine subprocess, exactly as a cookbook user would point the recipe at `chief engine serve`.
The recipe's own defaults (group size 4, 5 new tokens, rank 32, importance sampling, 7-day TTL
on its checkpoint) except the batch (`--groups`, 100 in `recipes/math_rl/train.py`, too many for
a CPU) and the learning rate (the recipe's 1e-5 is for 8B+ models; the LoRA rule of
`hyperparam_utils.get_lr` gives ~1e-3 for SmolLM2's hidden size 576).

Prints, per iteration, seconds, sampled tokens/s (the tokens the policy generated during the
iteration's sampling phase, over that phase's wall time), mean reward and the fraction
correct, then the medians and the reward of the first and last five iterations.

Usage: python bench/cookbook_rl.py [--model SmolLM2-135M-Instruct-Q4_1] [--iterations 20]
       [--groups 16] [--group-size 4] [--max-tokens 5] [--lr 1e-3] [--dtype auto] [--device auto]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from engine_common import machine  # noqa: E402
from tinker_chief.engine.server.launcher import engine_stats, start_engine  # noqa: E402
from tinker_chief.models import DEFAULT_MODEL  # noqa: E402

RENDERER = "qwen3_instruct"  # the cookbook's name for the ChatML chief registers as `chatml`


def run_recipe(args: argparse.Namespace, base_url: str, log_path: Path) -> float:
    from tinker_cookbook.recipes.math_rl.arithmetic_env import ArithmeticDatasetBuilder
    from tinker_cookbook.rl import train

    builder = ArithmeticDatasetBuilder(
        batch_size=args.groups,
        group_size=args.group_size,
        model_name_for_tokenizer=args.model,
        renderer_name=RENDERER,
        n_batches=args.iterations,
    )
    config = train.Config(
        learning_rate=args.lr,
        dataset_builder=builder,
        model_name=args.model,
        recipe_name="bench_cookbook_rl",
        max_tokens=args.max_tokens,
        log_path=str(log_path),
        renderer_name=RENDERER,
        base_url=base_url,
        lora_rank=args.rank,
        num_groups_to_log=0,
    )
    start = time.perf_counter()
    asyncio.run(train.main(config))
    return time.perf_counter() - start


def report(rows: list[dict], wall: float) -> dict:
    print(
        f"{'iter':>4} {'s/iter':>7} {'sample s':>8} {'tokens':>6} {'tok/s':>7} "
        f"{'reward':>7} {'correct':>7}"
    )
    per_s, tok_s = [], []
    for row in rows:
        tokens, sampling = row["env/all/total_ac_tokens"], row["time/sampling"]
        per_s.append(row["time/total"])
        tok_s.append(tokens / sampling)
        print(
            f"{row['step']:>4} {row['time/total']:>7.2f} {sampling:>8.2f} {tokens:>6} "
            f"{tokens / sampling:>7.1f} "
            f"{row['env/all/reward/total']:>7.3f} {row['env/all/correct']:>7.3f}"
        )
    rewards = [row["env/all/reward/total"] for row in rows]
    summary = {
        "iterations": len(rows),
        "wall_s": round(wall, 1),
        "median_s_per_iteration": round(statistics.median(per_s), 2),
        "median_sampled_tokens_per_s": round(statistics.median(tok_s), 1),
        "reward_first5": round(statistics.mean(rewards[:5]), 3),
        "reward_last5": round(statistics.mean(rewards[-5:]), 3),
        "correct_first5": round(statistics.mean(r["env/all/correct"] for r in rows[:5]), 3),
        "correct_last5": round(statistics.mean(r["env/all/correct"] for r in rows[-5:]), 3),
    }
    print(json.dumps(summary))
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--groups", type=int, default=16, help="groups (problems) per iteration")
    parser.add_argument("--group-size", type=int, default=4, help="samples per problem")
    parser.add_argument("--max-tokens", type=int, default=5)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--rank", type=int, default=32)
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(
        f"recipe: rl.train.main + ArithmeticDatasetBuilder on {args.model}, "
        f"{args.iterations} iterations x {args.groups} groups x {args.group_size} samples, "
        f"max_tokens {args.max_tokens}, lr {args.lr}, rank {args.rank}, renderer {RENDERER}"
    )
    with tempfile.TemporaryDirectory(prefix="bench-cookbook-rl-") as tmp:
        with start_engine(
            state_dir=Path(tmp) / "engine", device=args.device, dtype=args.dtype
        ) as engine:
            os.environ["TINKER_API_KEY"] = (
                engine.api_key_for_clients
            )  # the SDK reads the key from here
            stats = engine_stats(engine.base_url, engine.api_key_for_clients) or {}
            print(f"engine: {stats.get('device', '?')} {stats.get('precision', '?')}")
            wall = run_recipe(args, engine.base_url, Path(tmp) / "log")
        rows = [
            json.loads(line)
            for line in (Path(tmp) / "log" / "metrics.jsonl").read_text().splitlines()
        ]
    report([row for row in rows if "time/total" in row], wall)


if __name__ == "__main__":
    main()
