"""Benchmark: `chief eval-offline` vs Inspect's own `hf` provider on the same samples and settings.

Both sides evaluate SmolLM2-135M-Instruct on the same N arithmetic questions, greedy
(temperature 0 / do_sample=false), the same max tokens and the same concurrency (Inspect's
max_connections is its hf batch size). Both are warmed up first (engine started and model
loaded; hf model loaded and memoized), then timed end to end: prompts in, graded results out,
taking turns for `--rounds` rounds (3 by default), so a slow minute of a shared machine hits
both alike; the round with the median ratio counts (its times, answers and engine counters).
Prints samples/s and accuracy for each, the ratio (target >= 2x) and how often the two gave the
same answer. `--dtype`/`--hf-dtype` choose each side's precision. By default both run in this
machine's faster one: chief's `auto` picks bf16 or fp32 by its GEMM probe (printed, with both
GFLOP/s), and `--hf-dtype auto` loads Inspect's hf model in the precision the engine chose;
`--hf-dtype float32` is what Inspect does out of the box (the checkpoint's fp32).

    python bench/eval_offline.py [--n 200] [--max-tokens 16] [--concurrency 32] [--fewshot 0]
                                 [--dtype auto|float32|bfloat16] [--hf-dtype auto|float32|bfloat16]
                                 [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TINKER_TELEMETRY", "0")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from engine_common import machine, median_round  # noqa: E402
from goals import record  # noqa: E402
from tinker_chief.engine.server.launcher import start_engine  # noqa: E402
from tinker_chief.models import DEFAULT_MODEL, materialize_model  # noqa: E402


def write_samples(path: Path, n: int, fewshot: int) -> None:
    """`n` arithmetic questions; with `fewshot` > 0 the system prompt carries that many solved
    examples, the shared preamble of most benchmark prompts (GSM8K, MMLU run few-shot)."""
    system = "You are a helpful assistant."  # explicit: SmolLM2's HF template would insert its own
    if fewshot:
        shots = "\n".join(
            f"Q: What is {a} + {a + 4}? A: {2 * a + 4}" for a in range(11, 11 + fewshot)
        )
        system += f" Answer with the number only, as in these examples:\n{shots}"
    with path.open("w") as handle:
        for i in range(n):
            a, b = 3 + i % 17, 5 + (7 * i) % 23
            handle.write(
                json.dumps(
                    {
                        "id": f"s{i}",
                        "system": system,
                        "input": f"What is {a} + {b}? Reply with the number only.",
                        "output": str(a + b),
                    }
                )
                + "\n"
            )


def run_chief(
    handle, data: Path, max_tokens: int, concurrency: int, out: Path, limit: int | None = None
) -> tuple[float, list[str], dict]:
    """One `eval-offline` run on the engine at `handle` (a fresh output directory, so nothing is
    resumed): seconds, answers, and the engine's counters over the run."""
    from tinker_chief.connection import choose_backend, open_connection
    from tinker_chief.engine.server.launcher import engine_stats
    from tinker_chief.evals.model_sampler import GenerationSettings
    from tinker_chief.evals.offline import OfflineConfig, run_offline_async

    def stats() -> dict:
        return engine_stats(handle.base_url, handle.api_key_for_clients) or {}

    config = OfflineConfig(
        DEFAULT_MODEL,
        data,
        "numeric",
        settings=GenerationSettings(max_tokens=max_tokens, temperature=0.0),
        limit=limit,
        concurrency=concurrency,
        output_dir=out,
    )
    choice = choose_backend(base_url=handle.base_url)
    with open_connection(choice, api_key=handle.api_key_for_clients) as connection:
        before = stats()
        started = time.perf_counter()
        result = asyncio.run(run_offline_async(config, connection))
        elapsed = time.perf_counter() - started
        after = stats()
    timed: dict = {
        key: round(after[key] - before[key], 2)
        for key in ("sample_requests", "sample_batches", "sample_compute_s")
    }
    precision = ("precision", "precision_basis", "gemm_gflops", "fp32_kernel")
    timed.update({key: after[key] for key in precision if key in after})
    return elapsed, [r.response or "" for r in result.records], timed


def hf_model(dtype: str):
    """Inspect's own `hf/local` provider on the model, loaded once in `dtype`."""
    import torch
    from inspect_ai.model import get_model

    return get_model(
        "hf/local",
        model_path=str(materialize_model(DEFAULT_MODEL)),
        do_sample=False,
        device="cpu",
        dtype=getattr(torch, dtype),
    )


def run_inspect_hf(
    model, data: Path, max_tokens: int, concurrency: int, out: Path, limit: int | None = None
) -> tuple[float, list[str]]:
    """One Inspect eval of the samples through `model`: seconds and answers."""
    from inspect_ai import eval as inspect_eval

    from tinker_chief.evals.inspect_tasks import jsonl_task

    started = time.perf_counter()
    logs = inspect_eval(
        jsonl_task(data=str(data), scorer="match"),
        model=model,
        display="none",
        max_tokens=max_tokens,
        temperature=0.0,
        max_connections=concurrency,
        limit=limit,
        log_dir=str(out),
    )
    elapsed = time.perf_counter() - started
    if logs[0].status != "success":
        raise SystemExit(f"hf baseline failed: {logs[0].error}")
    by_id = {str(s.id): s.output.completion for s in logs[0].samples}
    return elapsed, [by_id[key] for key in sorted(by_id, key=lambda key: int(key[1:]))]


def accuracy(answers: list[str], data: Path) -> float:
    """Both sides graded by chief's `numeric` grader, so bf16 and fp32 answers compare fairly."""
    from tinker_chief.evals.graders import make_grader

    grader = make_grader("numeric")
    targets = [json.loads(line)["output"] for line in data.read_text().splitlines()]
    return sum(
        bool(grader.check(a, t).correct) for a, t in zip(answers, targets, strict=True)
    ) / len(targets)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--fewshot", type=int, default=0, help="solved examples in the shared system prompt"
    )
    parser.add_argument(
        "--dtype",
        choices=("auto", "float32", "bfloat16"),
        default="auto",
        help="the engine's --dtype (auto: the faster of bf16 and fp32 here, by its GEMM probe)",
    )
    parser.add_argument(
        "--hf-dtype",
        choices=("auto", "float32", "bfloat16"),
        default="auto",
        help="the dtype Inspect's hf provider loads the model in (auto: the one the engine chose; "
        "Inspect's own default is the checkpoint's fp32)",
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="interleaved rounds of both sides (median counts)"
    )
    parser.add_argument(
        "--doc",
        type=Path,
        default=None,
        metavar="FILE",
        help="also record the ratio as this CPU kind's `eval-offline` goal row in FILE "
        "(bench/goals.py)",
    )
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp(prefix="chief-bench-"))
    data = out / "samples.jsonl"
    write_samples(data, args.n, args.fewshot)
    tokens, width = args.max_tokens, args.concurrency
    rounds = []
    # A real engine subprocess for the chief side, up for every round.
    with start_engine(state_dir=out / "engine", dtype=args.dtype) as handle:
        _, _, stats = run_chief(handle, data, tokens, width, out / "warm", limit=width)
        if args.hf_dtype == "auto":  # the engine's choice: bf16 under autocast, or fp32
            bf16 = stats.get("precision") == "bfloat16-autocast"
            args.hf_dtype = "bfloat16" if bf16 else "float32"
        model = hf_model(args.hf_dtype)
        run_inspect_hf(model, data, tokens, width, out / "hf-warm", limit=width)
        for index in range(args.rounds):
            chief = run_chief(handle, data, tokens, width, out / f"chief-{index}")
            hf = run_inspect_hf(model, data, tokens, width, out / f"hf-{index}")
            rounds.append((chief, hf))
            engine = chief[2]
            print(
                f"round {index + 1}: chief {chief[0]:.2f} s ({engine['sample_batches']:g} "
                f"batches, {engine['sample_compute_s']:.2f} s in generate), hf {hf[0]:.2f} s, "
                f"ratio {hf[0] / chief[0]:.2f}x"
            )
    ratios = sorted(hf[0] / chief[0] for chief, hf in rounds)
    (chief_s, chief_answers, stats), (hf_s, hf_answers) = median_round(
        rounds, lambda pair: pair[1][0] / pair[0][0]
    )
    same = sum(a.strip() == b.strip() for a, b in zip(chief_answers, hf_answers, strict=True))
    print(
        f"machine: {machine()}; model {DEFAULT_MODEL}; "
        f"n={args.n}, fewshot={args.fewshot}, max_tokens={args.max_tokens}, "
        f"concurrency={args.concurrency}, greedy; "
        f"engine --dtype {args.dtype}, hf dtype {args.hf_dtype}; the median of {len(rounds)} "
        "interleaved round(s)"
    )
    print(
        f"chief eval-offline (local engine): {chief_s:7.2f} s  {args.n / chief_s:7.2f} samples/s  "
        f"accuracy {accuracy(chief_answers, data):.3f}"
    )
    print(
        f"inspect hf/local (baseline):       {hf_s:7.2f} s  {args.n / hf_s:7.2f} samples/s  "
        f"accuracy {accuracy(hf_answers, data):.3f}"
    )
    print(
        f"engine during the timed run: {stats} "
        "(sample_compute_s: time inside the model's batched generate)"
    )
    print(
        f"ratio (chief / hf samples/s): {hf_s / chief_s:.2f}x (rounds: "
        f"{ratios[0]:.2f}-{ratios[-1]:.2f}x)   identical answers: {same}/{args.n}"
    )
    if args.doc:
        how = (
            f"`bench/eval_offline.py --n {args.n} --concurrency {args.concurrency}`, both sides "
            f"{args.hf_dtype}, median of {len(rounds)} rounds"
        )
        print(record("eval-offline", hf_s / chief_s, how, args.doc))


if __name__ == "__main__":
    main()
