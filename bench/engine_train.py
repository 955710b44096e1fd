"""Training throughput: the engine through the tinker SDK vs the same LoRA step in plain PEFT.

All run in this one invocation on the same model, batch and LoRA config, interleaved:
  1. baseline: plain PEFT + torch.optim.AdamW in process (`model(input_ids).logits` +
     cross-entropy), once in fp32 and once under bf16 autocast: the faster of the two is this
     machine's best textbook loop, and the ratios are against it (a CPU without native bf16
     runs the fp32 loop alone: emulated bf16 is many times slower there, 20x with the kernels
     capped to AVX2 on an EPYC, and would only add its minutes to the run),
  2. TorchBackend in process (the compute side alone), in the engine's precision (`--dtype`;
     `auto` = the faster of bf16 and fp32 by the engine's GEMM probe),
  3. the engine subprocess driven by the unmodified tinker SDK over HTTP, same `--dtype`.
It prints tokens/s for each, the ratios against the faster PEFT loop, and model-FLOPs
utilisation of the backend and SDK steps against the fastest GEMM kernel measured in the same
run (bf16, fp32 by `F.linear`, fp32 by prepacked oneDNN). MFU counts the matmul FLOPs a
frozen-base LoRA step must do: forward 2N + backward through activations 2N per token (no base
weight gradients), N = matmul parameters incl. the output projection, plus attention (QK^T and
AV, forward and backward).

Usage: python bench/engine_train.py [--model NAME] [--batch 8] [--seq 256] [--steps 3]
                                    [--dtype auto] [--doc docs/BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

from tinker_chief.engine.server.launcher import ENGINE_SPIN_COUNT

# The in-process sides spin at OpenMP barriers as briefly as the engine the launcher starts
# (set before torch loads libgomp): with libgomp's long default spin they ran 3x slower than
# the same backend in the engine subprocess while other jobs shared the cores.
if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", ENGINE_SPIN_COUNT)

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from doc_blocks import write_block  # noqa: E402
from engine_common import gemm_peaks, machine, mfu_text, sdk_engine, timed  # noqa: E402
from goals import record  # noqa: E402
from tinker_chief.engine.backend import AdamStep, DatumArrays, LoraSettings  # noqa: E402
from tinker_chief.engine.compute import TorchBackend  # noqa: E402
from tinker_chief.engine.compute.devices import BF16, MachineFacts, Precision  # noqa: E402
from tinker_chief.models import DEFAULT_MODEL, load_model_config  # noqa: E402

STEP = AdamStep(learning_rate=1e-4)
RANK = 16


def make_batch(batch: int, seq: int, vocab: int) -> list[DatumArrays]:
    rng = np.random.default_rng(0)
    tokens = rng.integers(3, min(vocab, 20000), (batch, seq + 1))
    return [
        DatumArrays(
            row[:-1].copy(), {"target_tokens": row[1:].copy(), "weights": np.ones(seq, np.float32)}
        )
        for row in tokens
    ]


def step_flops(config, tokens: int, seq: int) -> float:
    h, layers = config.hidden_size, config.num_hidden_layers
    heads, kv = config.num_attention_heads, config.num_key_value_heads
    head_dim = getattr(config, "head_dim", None) or h // heads
    per_layer = h * heads * head_dim * 2 + h * kv * head_dim * 2 + 3 * h * config.intermediate_size
    matmul_params = layers * per_layer + h * config.vocab_size
    attention = (
        layers * 2 * 2 * seq * heads * head_dim
    )  # QK^T + AV per token (causal halves; fwd counted full)
    return tokens * (4 * matmul_params + 2 * attention)


def backend_step(args, data):
    backend = TorchBackend(device=args.device, dtype=args.dtype)
    backend.create_training_model("bench", args.model, LoraSettings(rank=RANK, seed=0))

    def step() -> None:
        backend.forward_backward("bench", data, "cross_entropy", {}, forward_only=False)
        backend.optim_step("bench", STEP)

    return step, backend


def peft_step(data, lora_config, local_dir, precision):
    """The baseline: the textbook PEFT training step, same LoRA targets, under `precision`'s
    autocast (fp32 base weights, cast by autocast on every call)."""
    import copy

    from peft import get_peft_model

    from tinker_chief.engine.compute.base_pool import load_frozen_causal_lm

    model = get_peft_model(
        load_frozen_causal_lm(local_dir, precision.device), copy.deepcopy(lora_config)
    )
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad],
        lr=STEP.learning_rate,
        betas=(STEP.beta1, STEP.beta2),
        eps=STEP.eps,
        weight_decay=0.0,
    )
    ids = torch.as_tensor(np.stack([d.tokens for d in data]), device=precision.device)
    labels = torch.as_tensor(
        np.stack([d.loss_fn_inputs["target_tokens"] for d in data]), device=precision.device
    )

    def step() -> None:
        with precision.autocast():
            logits = model(input_ids=ids).logits
        loss = torch.nn.functional.cross_entropy(
            logits.float().flatten(0, 1), labels.flatten(), reduction="sum"
        )
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def sdk_step(service, args, data):
    import tinker

    sdk_data = [
        tinker.Datum(
            model_input=tinker.ModelInput.from_ints(d.tokens.tolist()),
            loss_fn_inputs=dict(d.loss_fn_inputs),
        )
        for d in data
    ]
    adam = tinker.AdamParams(learning_rate=STEP.learning_rate)
    client = service.create_lora_training_client(base_model=args.model, rank=RANK, seed=0).result()

    def step() -> None:
        fb = client.forward_backward(sdk_data, "cross_entropy")
        opt = client.optim_step(adam)
        fb.result()
        opt.result()

    return step


def interleaved(steps: dict[str, Callable[[], None]], rounds: int) -> dict[str, float]:
    """Median seconds per side, sides alternating each round so load drift hits all alike."""
    for step in steps.values():
        step()  # warm-up
    samples: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            samples[name].append(timed(step, 1, warmup=0))
    return {name: statistics.median(values) for name, values in samples.items()}


LABELS = {
    "peft-float32": "baseline: plain PEFT + torch AdamW, fp32",
    "peft-bfloat16": "baseline: plain PEFT + torch AdamW, bf16 autocast (fp32 base weights)",
    "backend": "`TorchBackend` in process (no HTTP)",
    "sdk": "engine subprocess through the unmodified tinker SDK (protobuf over HTTP)",
}


def peft_precisions(device: str) -> dict[str, torch.dtype | None]:
    """The PEFT loop's precisions worth timing here: fp32, and bf16 autocast on CUDA or on a CPU
    the engine's probe would time bf16 on (native bf16)."""
    bf16 = device == "cuda" or BF16 in MachineFacts.here().kernels("auto")
    return {"float32": None, **({"bfloat16": torch.bfloat16} if bf16 else {})}


def fastest_peft(seconds: dict[str, float]) -> str:
    return min((name for name in seconds if name.startswith("peft-")), key=seconds.__getitem__)


def report(args, precision: Precision, seconds: dict[str, float], config, loads: list[float]):
    """The result as Markdown: the sides' speeds against the faster PEFT loop, and MFU."""
    tokens = args.batch * args.seq
    best = fastest_peft(seconds)
    lines = [
        f"{args.model}, LoRA r={RANK} on all projections + lm_head, AdamW, batch "
        f"{args.batch}x{args.seq} random tokens, median of {args.steps} interleaved round(s) after "
        f"1 warm-up; load average {loads[0]:.1f} at the start, {loads[1]:.1f} at the end; "
        f"GOMP_SPINCOUNT {os.environ.get('GOMP_SPINCOUNT', 'unset')} for all sides. Engine "
        f"precision (`--dtype {args.dtype}`): {precision.name} ({precision.basis}).",
        "",
        f"| side | s/step | tokens/s | ratio vs the faster PEFT loop ({best.split('-')[1]}) |",
        "|---|---:|---:|---:|",
    ]
    for name, value in seconds.items():
        ratio = seconds[best] / value
        lines.append(f"| {LABELS[name]} | {value:.2f} | {tokens / value:.0f} | {ratio:.2f} |")
    flops = step_flops(config, tokens, args.seq)
    peaks = gemm_peaks(precision.device)
    lines.append("")
    for name in ("backend", "sdk"):
        if name in seconds:
            mfu = mfu_text(flops / seconds[name], peaks)
            lines.append(f"- {name} step ({flops / 1e12:.2f} TFLOP): {mfu}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--steps", type=int, default=3, help="timed rounds per side")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--skip-sdk", action="store_true", help="measure only the in-process sides")
    parser.add_argument(
        "--doc",
        type=Path,
        default=None,
        metavar="FILE",
        help="also write the result, dated, into FILE's `engine-train` block (docs/BENCHMARKS.md)",
    )
    args = parser.parse_args()

    print(f"machine: {machine()}")
    loads = [os.getloadavg()[0]]
    data = make_batch(args.batch, args.seq, int(load_model_config(args.model)["vocab_size"]))
    backend_fn, backend = backend_step(args, data)  # loading the base settles `auto`
    precision, base = backend.precision, backend._bases.get(args.model)
    lora = backend.lora_config("bench")
    steps = {
        f"peft-{name}": peft_step(data, lora, base.local_dir, Precision(precision.device, dtype))
        for name, dtype in peft_precisions(precision.device).items()
    }
    if "peft-bfloat16" not in steps:
        print("PEFT under bf16 autocast not timed: no native bf16 on this CPU (emulated, slower)")
    steps["backend"] = backend_fn
    with contextlib.ExitStack() as stack:
        if not args.skip_sdk:
            steps["sdk"] = sdk_step(
                stack.enter_context(sdk_engine(args.dtype, args.device)), args, data
            )
        seconds = interleaved(steps, args.steps)
    loads.append(os.getloadavg()[0])
    text = report(args, precision, seconds, base.model.config, loads)
    print(text)
    if args.doc:
        header = f"`bench/engine_train.py`, {datetime.date.today()}, machine: {machine()}"
        write_block(args.doc, "engine-train", f"{header}\n\n{text}")
        if "sdk" in seconds:
            best = seconds[fastest_peft(seconds)]
            how = (
                f"`bench/engine_train.py --batch {args.batch} --seq {args.seq} "
                f"--dtype {args.dtype}`"
            )
            print(record("train", best / seconds["sdk"], how, args.doc))


if __name__ == "__main__":
    main()
