"""Sampling throughput: 16 concurrent SDK `sample` requests vs 16 sequential HF `generate` calls.

Every side generates exactly `--new-tokens` tokens (64 by default) per request from the same
chat prompts on the same model, greedy:
  - baseline (the goal's): 16 sequential `model.generate(..., max_new_tokens=64,
    min_new_tokens=64)` calls on the model as transformers loads it, in the precision the engine
    chose (bf16 weights when the engine computes in bf16, as `bench/eval_offline.py` loads
    Inspect's `hf` model),
  - a stricter baseline: the same sequential `generate` calls on the engine's own base model
    under the engine's autocast, so it gets the engine's prepacked linears, fused sibling
    projections and decode attention too (what this bench measured against before 2026-12-07),
  - engine: 16 `SamplingClient.sample` futures submitted at once through the tinker SDK to a
    real engine subprocess (which batches them into one decode loop), no stop sequences.
Also measured in process: one `TorchBackend.sample` call with the 16 requests (no HTTP).
The sides take turns for `--rounds` rounds (3 by default; the engine stays up between them), so
a slow minute of a shared machine hits every side alike; each round's ratios are printed, and
the round with the median SDK ratio counts (its times and ratios, all from that one round).
Prints aggregate new tokens/s for each and the ratios to each baseline, and the precision all
sides ran in with why (`--dtype auto`: the faster of bf16 and fp32 by the engine's GEMM probe,
whose GFLOP/s it prints).

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
from transformers import PreTrainedModel

sys.path.insert(0, str(Path(__file__).resolve().parent))
from engine_common import machine, median_round, sdk_engine  # noqa: E402
from goals import record  # noqa: E402
from tinker_chief.engine.backend import SampleRequest, SamplingSettings  # noqa: E402
from tinker_chief.engine.compute import TorchBackend  # noqa: E402
from tinker_chief.models import DEFAULT_MODEL, load_tokenizer, materialize_model  # noqa: E402

# Round lines: HF generate's time over each other side's.
LABELS = {"hf-engine-base": "the stricter baseline's", "backend": "backend's", "sdk": "SDK's"}

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


def stock_model(backend: TorchBackend, model: str) -> PreTrainedModel:
    """The model as transformers loads it, in the engine's precision: bf16 weights when the engine
    computes in bf16, else fp32."""
    from transformers import AutoModelForCausalLM

    dtype = backend.precision.autocast_dtype or torch.float32
    loaded = AutoModelForCausalLM.from_pretrained(str(materialize_model(model)), dtype=dtype)
    loaded.to(backend.device)  # type: ignore[arg-type]  # transformers types `.to` through a wrapper
    return loaded.eval()


def bench_hf(
    hf_model: PreTrainedModel,
    autocast: contextlib.AbstractContextManager,
    batch: list[list[int]],
    new_tokens: int,
) -> float:
    """Sequential generate calls, one per prompt."""
    start = time.perf_counter()
    with torch.no_grad(), autocast:
        for prompt in batch:
            ids = torch.tensor([prompt], device=hf_model.device)
            hf_model.generate(
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
    stock = stock_model(backend, args.model)
    # Each baseline: the model `generate` runs on and the context it runs in.
    baselines = {
        "hf": (stock, contextlib.nullcontext),
        "hf-engine-base": (backend._bases.get(args.model).model, backend.precision.autocast),
    }
    for hf_model, context in baselines.values():
        bench_hf(hf_model, context(), batch[:1], args.new_tokens)  # each baseline's warm-up
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
                side: bench_hf(hf_model, context(), batch, args.new_tokens)
                for side, (hf_model, context) in baselines.items()
            }
            times["backend"] = bench_backend(backend, args.model, batch, args.new_tokens)
            if sampler is not None:
                times["sdk"] = bench_sdk(sampler, batch, args.new_tokens)
            rounds.append(times)
            ratios = ", ".join(
                f"{LABELS[side]} {times['hf'] / times[side]:.2f}x" for side in times if side != "hf"
            )
            print(f"round {len(rounds)}: HF generate {times['hf']:.2f} s; its time over {ratios}")
    headline = "sdk" if not args.skip_sdk else "backend"
    spread = [times["hf"] / times[headline] for times in rounds]
    median = median_round(rounds, lambda times: times["hf"] / times[headline])
    print(
        f"model {args.model}, {args.requests} requests x {args.new_tokens} new tokens, greedy, "
        f"precision {backend.precision.name} ({backend.precision.basis}); the median of "
        f"{len(rounds)} interleaved round(s) by the {headline} ratio"
    )
    hf_s, strict_s = median["hf"], median["hf-engine-base"]
    stock_dtype = str(next(stock.parameters()).dtype).removeprefix("torch.")
    print(
        f"HF generate, sequential ({stock_dtype} weights) : {hf_s:7.2f} s  "
        f"{total / hf_s:7.1f} tok/s  (the baseline)"
    )
    print(
        f"HF generate on the engine's base, sequential : {strict_s:7.2f} s  "
        f"{total / strict_s:7.1f} tok/s  (stricter baseline)"
    )
    for side, name in [
        ("backend", "TorchBackend.sample, batched"),
        ("sdk", "engine via tinker SDK"),
    ]:
        if side in median:
            seconds = median[side]
            print(
                f"{name:45s}: {seconds:7.2f} s  {total / seconds:7.1f} tok/s  ratio "
                f"{hf_s / seconds:.2f}x ({strict_s / seconds:.2f}x the stricter baseline)"
            )
    if not args.skip_sdk and args.doc:
        sdk_s = median["sdk"]
        how = (
            f"`bench/engine_sample.py --requests {args.requests} --new-tokens "
            f"{args.new_tokens}`, median of {len(rounds)} rounds; vs transformers' model in "
            f"{stock_dtype}; {strict_s / sdk_s:.2f}x vs `generate` on the engine's own base"
        )
        print(record("sample", hf_s / sdk_s, how, args.doc))
    print(f"{headline} ratio over the rounds: {min(spread):.2f}-{max(spread):.2f}x")


if __name__ == "__main__":
    main()
