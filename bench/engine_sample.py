"""Sampling throughput: 16 concurrent SDK `sample` requests vs 16 sequential HF `generate` calls.

Both sides generate exactly `--new-tokens` tokens (64 by default) per request from the same
chat prompts on the same model and precision, greedy:
  - baseline: 16 sequential `model.generate(..., max_new_tokens=64, min_new_tokens=64)` calls,
  - engine: 16 `SamplingClient.sample` futures submitted at once through the tinker SDK to a
    real engine subprocess (which batches them into one decode loop), no stop sequences.
Also measured in process: one `TorchBackend.sample` call with the 16 requests (no HTTP).
The sides take turns for `--rounds` rounds (3 by default; the engine stays up between them), so
a slow minute of a shared machine hits every side alike; each round's ratios are printed, and
the round with the median SDK ratio counts (its times and ratios, all from that one round).
Prints aggregate new tokens/s for each and the ratio engine/baseline, and the precision all
sides ran in with why (`--dtype auto`: the faster of bf16 and fp32 by the engine's GEMM probe,
whose GFLOP/s it prints; the HF baseline runs on the backend's own base model under the same
autocast, so it too gets the machine's faster precision and kernel).

Usage: python bench/engine_sample.py [--model NAME] [--requests 16] [--new-tokens 64] [--dtype auto]
                                    [--rounds 3]
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from engine_common import machine, median_round, sdk_engine  # noqa: E402
from goals import record  # noqa: E402
from tinker_chief.engine.backend import SampleRequest, SamplingSettings  # noqa: E402
from tinker_chief.engine.compute import TorchBackend  # noqa: E402
from tinker_chief.models import DEFAULT_MODEL, load_tokenizer  # noqa: E402

QUESTIONS = [
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "What is 2+3?",
    "Name three colours.",
    "Why is the sky blue?",
    "Give me a fun fact about cats.",
    "How do plants make food?",
    "What is a prime number?",
]


def prompts(model: str, count: int) -> list[list[int]]:
    tokenizer = load_tokenizer(model)
    out = []
    for index in range(count):
        messages = [{"role": "user", "content": QUESTIONS[index % len(QUESTIONS)]}]
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        out.append(tokenizer(text, add_special_tokens=False).input_ids)
    return out


def bench_hf(backend: TorchBackend, model: str, batch: list[list[int]], new_tokens: int) -> float:
    """16 sequential generate calls on the backend's own (adapter-free) base model."""
    base = backend._bases.get(model).model
    start = time.perf_counter()
    with torch.no_grad(), backend.precision.autocast():
        for prompt in batch:
            ids = torch.tensor([prompt], device=backend.device)
            base.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                do_sample=False,
                pad_token_id=0,
            )
    return time.perf_counter() - start


def bench_backend(
    backend: TorchBackend, model: str, batch: list[list[int]], new_tokens: int
) -> float:
    settings = SamplingSettings(max_tokens=new_tokens, temperature=0.0)
    requests = [SampleRequest(model, tuple(p), 1, settings) for p in batch]
    start = time.perf_counter()
    results = backend.sample(requests)
    elapsed = time.perf_counter() - start
    assert all(len(r.sequences[0].tokens) == new_tokens for r in results)
    return elapsed


@contextlib.contextmanager
def sdk_sampler(model: str, batch: list[list[int]], new_tokens: int, dtype: str, device: str):
    """A sampling client of a real engine subprocess, warmed up by one untimed burst of the
    measured requests (a first full-size decode loop ran ~1.5x slower than the next ones)."""
    with sdk_engine(dtype, device) as service:
        sampler = service.create_sampling_client(base_model=model).result()
        bench_sdk(sampler, batch, new_tokens)
        yield sampler


def bench_sdk(sampler, batch: list[list[int]], new_tokens: int) -> float:
    """All requests submitted at once through the SDK; seconds until the last result."""
    import tinker

    params = tinker.SamplingParams(max_tokens=new_tokens, temperature=0.0, stop=[])
    start = time.perf_counter()
    futures = [sampler.sample(tinker.ModelInput.from_ints(p), 1, params) for p in batch]
    results = [f.result() for f in futures]
    elapsed = time.perf_counter() - start
    assert all(len(r.sequences[0].tokens) == new_tokens for r in results), "engine stopped early"
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--requests", type=int, default=16)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--skip-sdk", action="store_true")
    parser.add_argument(
        "--rounds", type=int, default=3, help="interleaved rounds of every side (median counts)"
    )
    parser.add_argument(
        "--doc",
        type=Path,
        default=None,
        metavar="FILE",
        help="also record the SDK ratio as this CPU kind's `sample` goal row in FILE "
        "(bench/goals.py)",
    )
    args = parser.parse_args()

    print(f"machine: {machine()}")
    backend = TorchBackend(device=args.device, dtype=args.dtype)
    batch = prompts(args.model, args.requests)
    bench_backend(backend, args.model, batch, args.new_tokens)  # warm-up: load, allocator, kernels
    total = args.requests * args.new_tokens
    rounds: list[dict[str, float]] = []
    with contextlib.ExitStack() as stack:
        sampler = None
        if not args.skip_sdk:
            sampler = stack.enter_context(
                sdk_sampler(args.model, batch, args.new_tokens, args.dtype, args.device)
            )
        for _ in range(args.rounds):
            times = {
                "hf": bench_hf(backend, args.model, batch, args.new_tokens),
                "backend": bench_backend(backend, args.model, batch, args.new_tokens),
            }
            if sampler is not None:
                times["sdk"] = bench_sdk(sampler, batch, args.new_tokens)
            rounds.append(times)
            ratios = ", ".join(f"{side} {times['hf'] / times[side]:.2f}x" for side in times)
            ratios = ratios.removeprefix("hf 1.00x, ")
            print(f"round {len(rounds)}: HF {times['hf']:.2f} s; ratios {ratios}")
    headline = "sdk" if not args.skip_sdk else "backend"
    spread = [times["hf"] / times[headline] for times in rounds]
    median = median_round(rounds, lambda times: times["hf"] / times[headline])
    print(
        f"model {args.model}, {args.requests} requests x {args.new_tokens} new tokens, greedy, "
        f"precision {backend.precision.name} ({backend.precision.basis}); the median of "
        f"{len(rounds)} interleaved round(s) by the {headline} ratio"
    )
    hf_s, backend_s = median["hf"], median["backend"]
    print(f"HF generate, sequential      : {hf_s:7.2f} s  {total / hf_s:7.1f} tok/s")
    print(
        f"TorchBackend.sample, batched : {backend_s:7.2f} s  {total / backend_s:7.1f} tok/s  "
        f"ratio {hf_s / backend_s:.2f}x"
    )
    if not args.skip_sdk:
        sdk_s = median["sdk"]
        print(
            f"engine via tinker SDK, concurrent: {sdk_s:7.2f} s  {total / sdk_s:7.1f} tok/s  "
            f"ratio {hf_s / sdk_s:.2f}x"
        )
        if args.doc:
            how = (
                f"`bench/engine_sample.py --requests {args.requests} "
                f"--new-tokens {args.new_tokens}`, median of {len(rounds)} rounds"
            )
            print(record("sample", hf_s / sdk_s, how, args.doc))
    print(f"{headline} ratio over the rounds: {min(spread):.2f}-{max(spread):.2f}x")


if __name__ == "__main__":
    main()
