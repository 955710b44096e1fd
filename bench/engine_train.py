"""Training throughput: the engine through the tinker SDK vs the same LoRA step in plain PEFT.

All three run in this one invocation on the same model, batch, LoRA config and precision:
  1. baseline: plain PEFT + torch.optim.AdamW in process (`model(input_ids, labels=...)`),
  2. TorchBackend in process (the compute side alone),
  3. the engine subprocess driven by the unmodified tinker SDK over HTTP.
It prints tokens/s for each, the ratio SDK/baseline, and model-FLOPs utilisation of the
backend step against a bf16 (and an fp32) GEMM measured in the same run.
MFU counts the matmul FLOPs a frozen-base LoRA step must do: forward 2N + backward through
activations 2N per token (no base weight gradients), N = matmul parameters incl. the output
projection, plus attention (QK^T and AV, forward and backward).

Usage: python bench/engine_train.py [--model NAME] [--batch 8] [--seq 256] [--steps 3] [--dtype auto]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from engine_common import gemm_flops_per_s, machine, sdk_engine, timed  # noqa: E402
from tinker_chief.engine.backend import AdamStep, DatumArrays, LoraSpec  # noqa: E402
from tinker_chief.engine.compute import TorchBackend  # noqa: E402
from tinker_chief.models import DEFAULT_MODEL, load_model_config  # noqa: E402

STEP = AdamStep(learning_rate=1e-4)
RANK = 16


def make_batch(batch: int, seq: int, vocab: int) -> list[DatumArrays]:
    rng = np.random.default_rng(0)
    tokens = rng.integers(3, min(vocab, 20000), (batch, seq + 1))
    return [
        DatumArrays(row[:-1].copy(), {"target_tokens": row[1:].copy(), "weights": np.ones(seq, np.float32)})
        for row in tokens
    ]


def step_flops(config, tokens: int, seq: int) -> float:
    h, layers = config.hidden_size, config.num_hidden_layers
    heads, kv = config.num_attention_heads, config.num_key_value_heads
    head_dim = getattr(config, "head_dim", None) or h // heads
    per_layer = h * heads * head_dim * 2 + h * kv * head_dim * 2 + 3 * h * config.intermediate_size
    matmul_params = layers * per_layer + h * config.vocab_size
    attention = layers * 2 * 2 * seq * heads * head_dim  # QK^T + AV per token (causal halves; fwd counted full)
    return tokens * (4 * matmul_params + 2 * attention)


def backend_step(args, data):
    backend = TorchBackend(device=args.device, dtype=args.dtype)
    backend.create_training_model("bench", args.model, LoraSpec(rank=RANK, seed=0))

    def step() -> None:
        backend.forward_backward("bench", data, "cross_entropy", {}, forward_only=False)
        backend.optim_step("bench", STEP)

    return step, backend


def peft_step(data, lora_config, local_dir, precision):
    """The baseline: the textbook PEFT training step, same LoRA targets, same autocast."""
    import copy

    from peft import get_peft_model

    from tinker_chief.engine.compute.base_models import load_frozen_causal_lm

    model = get_peft_model(load_frozen_causal_lm(local_dir, precision.device), copy.deepcopy(lora_config))
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad],
        lr=STEP.learning_rate,
        betas=(STEP.beta1, STEP.beta2),
        eps=STEP.eps,
        weight_decay=0.0,
    )
    ids = torch.as_tensor(np.stack([d.tokens for d in data]), device=precision.device)
    labels = torch.as_tensor(np.stack([d.loss_fn_inputs["target_tokens"] for d in data]), device=precision.device)

    def step() -> None:
        with precision.autocast():
            logits = model(input_ids=ids).logits
        loss = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), reduction="sum")
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def sdk_step(service, args, data):
    import tinker

    sdk_data = [
        tinker.Datum(model_input=tinker.ModelInput.from_ints(d.tokens.tolist()), loss_fn_inputs=dict(d.loss_fn_inputs))
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--steps", type=int, default=3, help="timed rounds per side")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--skip-sdk", action="store_true", help="measure only the in-process sides")
    args = parser.parse_args()

    tokens = args.batch * args.seq
    print(f"machine: {machine()}")
    data = make_batch(args.batch, args.seq, int(load_model_config(args.model)["vocab_size"]))
    backend_fn, backend = backend_step(args, data)
    precision, base = backend.precision, backend._bases.get(args.model)
    steps = {"peft": peft_step(data, backend.lora_config("bench"), base.local_dir, precision), "backend": backend_fn}
    with contextlib.ExitStack() as stack:
        if not args.skip_sdk:
            steps["sdk"] = sdk_step(stack.enter_context(sdk_engine(args.dtype, args.device)), args, data)
        seconds = interleaved(steps, args.steps)
    print(
        f"model {args.model}, batch {args.batch}x{args.seq}, LoRA r={RANK}, precision {precision.name}, "
        f"median of {args.steps} interleaved rounds after 1 warm-up"
    )
    labels = {
        "peft": "plain PEFT in-process     ",
        "backend": "TorchBackend in-process   ",
        "sdk": "engine via tinker SDK/HTTP",
    }
    for name, value in seconds.items():
        ratio = "" if name == "peft" else f"  ratio vs PEFT {seconds['peft'] / value:.2f}"
        print(f"{labels[name]}: {value:7.2f} s/step  {tokens / value:8.0f} tok/s{ratio}")
    config, backend_s = base.model.config, seconds["backend"]
    flops = step_flops(config, tokens, args.seq)
    achieved = flops / backend_s
    for dtype in (torch.bfloat16, torch.float32):
        peak = gemm_flops_per_s(dtype, precision.device)
        print(
            f"MFU vs measured {str(dtype)[6:]:8s} GEMM ({peak / 1e9:7.1f} GFLOP/s): "
            f"{100 * achieved / peak:5.1f}%  (step does {flops / 1e12:.2f} TFLOP, {achieved / 1e9:.1f} GFLOP/s)"
        )


if __name__ == "__main__":
    main()
