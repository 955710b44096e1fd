"""Benchmark: multiple-choice scoring throughput (questions/s) in fp32 vs bf16, and their agreement.

Scores chief's shipped calibration questions (repeated to `--n`) by option logprobs through
the SDK, once against an engine started with `--dtype float32` and once with `bfloat16`, same
run, same concurrency. Prints questions/s for each, the ratio, how often both pick the same
option, the largest probability difference, and both ECEs.

    python bench/calibration.py [--n 120] [--concurrency 16] [--model SmolLM2-135M-Instruct-Q4_1]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TINKER_TELEMETRY", "0")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from engine_common import machine  # noqa: E402
from tinker_chief.evals.calibration import (  # noqa: E402
    MCQuestion,
    calibration_metrics,
    load_questions,
    run_calibration,
    scored_from_records,
)
from tinker_chief.models import DEFAULT_MODEL  # noqa: E402


def questions(n: int) -> list[MCQuestion]:
    base = load_questions()
    return [
        MCQuestion(f"{q.id}-{i // len(base)}", q.question, q.choices, q.answer_index)
        for i, q in ((i, base[i % len(base)]) for i in range(n))
    ]


def score(dtype: str, model: str, items: list[MCQuestion], concurrency: int, state: Path):
    from tinker_chief.connection import choose_backend, open_connection
    from tinker_chief.engine.server.launcher import start_engine
    from tinker_chief.evals.model_sampler import ModelSampler

    with (
        start_engine(state_dir=state / dtype, dtype=dtype) as handle,
        open_connection(
            choose_backend(base_url=handle.base_url), api_key=handle.api_key_for_clients
        ) as connection,
    ):
        service = connection.service_client()

        async def run():
            sampler = await ModelSampler.create(service, model, concurrency)
            await run_calibration(sampler, items[:2])  # warm-up (model loaded, first batches run)
            started = time.perf_counter()
            records = await run_calibration(sampler, items)
            return time.perf_counter() - started, records

        return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=120)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    args = parser.parse_args()
    items = questions(args.n)
    state = Path(tempfile.mkdtemp(prefix="chief-bench-cal-"))
    results = {
        dtype: score(dtype, args.model, items, args.concurrency, state)
        for dtype in ("float32", "bfloat16")
    }
    (t32, r32), (t16, r16) = results["float32"], results["bfloat16"]
    s32, s16 = scored_from_records(r32), scored_from_records(r16)
    if len(s32) != args.n or len(s16) != args.n:
        raise SystemExit(f"scoring errors: fp32 {args.n - len(s32)}, bf16 {args.n - len(s16)}")
    agree = sum(a.predicted == b.predicted for a, b in zip(s32, s16, strict=True))
    max_diff = max(
        abs(p - q)
        for a, b in zip(s32, s16, strict=True)
        for p, q in zip(a.probabilities, b.probabilities)
    )
    print(
        f"machine: {machine()}; model {args.model}; n={args.n} questions x 4 options, "
        f"concurrency={args.concurrency}"
    )
    print(
        f"fp32: {t32:7.2f} s  {args.n / t32:7.2f} questions/s  "
        f"accuracy {calibration_metrics(s32)['accuracy']:.3f}"
        f"  ECE {calibration_metrics(s32)['ece']:.4f}"
    )
    print(
        f"bf16: {t16:7.2f} s  {args.n / t16:7.2f} questions/s  "
        f"accuracy {calibration_metrics(s16)['accuracy']:.3f}"
        f"  ECE {calibration_metrics(s16)['ece']:.4f}"
    )
    print(
        f"ratio (bf16 / fp32 questions/s): {t32 / t16:.2f}x   "
        f"same option chosen: {agree}/{args.n}   "
        f"max |p_fp32 - p_bf16|: {max_diff:.4f}"
    )


if __name__ == "__main__":
    main()
