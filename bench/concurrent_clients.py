"""The engine under a sweep: aggregate training tokens/s of N = 1, 2, 4 concurrent clients.

One real engine subprocess, driven by the unmodified tinker SDK over HTTP; each client is its
own LoRA training client (its own adapter and AdamW) on the same base model, in its own thread,
doing `forward_backward` + `optim_step` on its own batch as fast as it can. For each N the
script times `--steps` steps of every client (after one untimed step each) and reports the
aggregate tokens/s, its ratio to N=1, how the engine grouped the calls (`engine_stats`:
shared calls and the largest), and model-FLOPs utilisation (the FLOPs of `engine_train.py`'s
`step_flops`) against bf16 and fp32 GEMMs measured in the same run. `--rounds` repeats the
N = 1, 2, 4 sequence, interleaved so load drift hits every N alike, and reports medians.

Usage: python bench/concurrent_clients.py [--model NAME] [--batch 4] [--seq 128] [--steps 3]
       [--rounds 1] [--dtype auto] [--doc docs/BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from doc_blocks import write_block  # noqa: E402
from engine_common import engine_and_sdk, gemm_flops_per_s, machine  # noqa: E402
from engine_train import RANK, STEP, make_batch, step_flops  # noqa: E402
from tinker_chief.models import DEFAULT_MODEL, load_model_config  # noqa: E402

COUNTS = (1, 2, 4)


def make_clients(service, args, count: int, data) -> list:
    import tinker

    sdk_data = [
        tinker.Datum(
            model_input=tinker.ModelInput.from_ints(d.tokens.tolist()),
            loss_fn_inputs=dict(d.loss_fn_inputs),
        )
        for d in data
    ]
    adam = tinker.AdamParams(learning_rate=STEP.learning_rate)
    clients = [
        service.create_lora_training_client(base_model=args.model, rank=RANK, seed=i).result()
        for i in range(count)
    ]

    def runner(client):
        def steps(n: int) -> None:
            for _ in range(n):
                fb = client.forward_backward(sdk_data, "cross_entropy")
                opt = client.optim_step(adam)
                fb.result()
                opt.result()

        return steps

    return [runner(client) for client in clients]


def aggregate_seconds(runners: list, steps: int) -> float:
    """Wall seconds for every runner to do `steps` steps at once (each warmed up by one)."""
    with ThreadPoolExecutor(len(runners)) as pool:
        list(pool.map(lambda run: run(1), runners))
        start = time.perf_counter()
        list(pool.map(lambda run: run(steps), runners))
        return time.perf_counter() - start


def stats(handle) -> dict:
    from tinker_chief.engine.server.launcher import engine_stats

    return engine_stats(handle.base_url, handle.api_key_for_clients) or {}


def measure(args) -> tuple[dict[int, float], dict[int, str], str]:
    data = make_batch(args.batch, args.seq, int(load_model_config(args.model)["vocab_size"]))
    tokens = args.batch * args.seq
    samples: dict[int, list[float]] = {n: [] for n in COUNTS}
    shared = {n: [0, 0, 0] for n in COUNTS}  # requests in shared calls, all requests, shared calls
    with engine_and_sdk(args.dtype, args.device) as (handle, service):
        runners = make_clients(service, args, max(COUNTS), data)
        for _ in range(args.rounds):
            for count in COUNTS:
                before = stats(handle)
                seconds = aggregate_seconds(runners[:count], args.steps)
                after = stats(handle)
                samples[count].append(count * args.steps * tokens / seconds)
                deltas = (
                    after["shared_requests"] - before["shared_requests"],
                    count * (args.steps + 1),
                    after["shared_calls"] - before["shared_calls"],
                )
                shared[count] = [
                    total + delta for total, delta in zip(shared[count], deltas, strict=True)
                ]
                print(
                    f"N={count}: {samples[count][-1]:.0f} tok/s, shared so far {shared[count]}",
                    flush=True,
                )
        precision = str(stats(handle).get("precision", "?"))
    grouping = {
        n: f"{s[0]} of {s[1]} `forward_backward` in {s[2]} shared calls" for n, s in shared.items()
    }
    return {n: statistics.median(v) for n, v in samples.items()}, grouping, precision


def report(args, throughput: dict[int, float], grouping: dict[int, str], precision: str) -> str:
    # step_flops reads attributes; the catalog gives the config as a dict.
    flops_per_token = step_flops(SimpleNamespace(**load_model_config(args.model)), 1, args.seq)
    peaks = {
        name: gemm_flops_per_s(dtype, "cuda" if torch.cuda.is_available() else "cpu")
        for name, dtype in (("bf16", torch.bfloat16), ("fp32", torch.float32))
    }
    lines = [
        f"{args.model}, LoRA r={RANK} on all projections + lm_head, each client a batch of "
        f"{args.batch}x{args.seq} random tokens, `forward_backward` + `optim_step` per step, "
        f"{args.steps} timed steps per client after 1 warm-up, precision {precision}, "
        f"median of {args.rounds} interleaved round(s).",
        "",
        "| clients N | aggregate tokens/s | ratio vs N=1 | "
        "MFU vs bf16 GEMM | MFU vs fp32 GEMM | engine grouping |",
        "|---:|---:|---:|---:|---:|---|",
    ]
    for count, value in throughput.items():
        achieved = value * flops_per_token
        lines.append(
            f"| {count} | {value:.0f} | {value / throughput[1]:.2f} | "
            f"{100 * achieved / peaks['bf16']:.1f}% | {100 * achieved / peaks['fp32']:.1f}% | "
            f"{grouping[count]} |"
        )
    lines += [
        "",
        f"GEMMs measured in the same run (1024^3): bf16 {peaks['bf16'] / 1e9:.1f} GFLOP/s, "
        f"fp32 {peaks['fp32'] / 1e9:.1f} GFLOP/s.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per client for each N")
    parser.add_argument("--rounds", type=int, default=1, help="repeats of the N = 1, 2, 4 sequence")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument(
        "--doc",
        type=Path,
        default=None,
        metavar="FILE",
        help="also write the result, dated, into FILE's `concurrent-clients-BATCHxSEQ` block "
        "(e.g. docs/BENCHMARKS.md)",
    )
    args = parser.parse_args()
    print(f"machine: {machine()}")
    text = report(args, *measure(args))
    print(text)
    if args.doc:
        header = f"`bench/concurrent_clients.py`, {datetime.date.today()}, machine: {machine()}"
        write_block(args.doc, f"concurrent-clients-{args.batch}x{args.seq}", f"{header}\n\n{text}")


if __name__ == "__main__":
    main()
