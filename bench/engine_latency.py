"""Round-trip latency of a minimal `forward` through the SDK, against the same call in-process.

Measures p50/p99 of `TrainingClient.forward(...).result()` on tiny-random-llama (one datum of
16 tokens) through the real engine over HTTP, and, in the same run as baseline, the same
forward-only call made directly on an in-process `TorchBackend` (no HTTP, no futures). The
ratio is what the protocol layer (HTTP, protobuf, future long-poll, compute-thread handoff)
costs per call. Also prints the p50 of a bare `GET healthz` as the HTTP floor.

    python bench/engine_latency.py [--calls 200]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

os.environ.setdefault("TINKER_TELEMETRY", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parent))

TINY = "tiny-random-llama"
TOKENS = list(range(10, 27))  # 17 tokens -> one datum of 16 positions


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[
        min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))
    ]


def interleaved(fns: dict[str, object], calls: int, warmup: int = 10) -> dict[str, list[float]]:
    """Time each fn once per round, alternating, so load changes on a shared machine hit all
    alike."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(calls):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - start)
    return samples


def local_forward():
    from tinker_chief.engine.backend import DatumArrays, LoraSettings
    from tinker_chief.engine.compute import TorchBackend

    backend = TorchBackend(device="cpu", dtype="float32")
    backend.create_training_model("bench", TINY, LoraSettings(rank=8, seed=0))
    datum = DatumArrays(
        tokens=np.asarray(TOKENS[:-1], dtype=np.int64),
        loss_fn_inputs={
            "target_tokens": np.asarray(TOKENS[1:], dtype=np.int64),
            "weights": np.ones(len(TOKENS) - 1, dtype=np.float32),
        },
    )
    return lambda: backend.forward_backward("bench", [datum], "cross_entropy", {}, True)


def run(calls: int) -> dict[str, list[float]]:
    import tinker
    from tinker import types

    from tinker_chief.engine.server.launcher import start_engine

    with start_engine(state_dir=Path(tempfile.mkdtemp()), device="cpu", dtype="float32") as engine:
        client = tinker.ServiceClient(base_url=engine.base_url, api_key=engine.api_key_for_clients)
        tc = client.create_lora_training_client(base_model=TINY, rank=8, seed=0).result()
        datum = types.Datum(
            model_input=types.ModelInput.from_ints(TOKENS[:-1]),
            loss_fn_inputs={"target_tokens": TOKENS[1:], "weights": [1.0] * (len(TOKENS) - 1)},
        )
        with httpx.Client(headers={"X-API-Key": engine.api_key_for_clients}) as http:
            samples = interleaved(
                {
                    "sdk": lambda: tc.forward([datum], "cross_entropy").result(),
                    "local": local_forward(),
                    "health": lambda: http.get(f"{engine.base_url}/api/v1/healthz"),
                },
                calls,
            )
        client.close("success").result()
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    from engine_common import machine

    samples = run(args.calls)
    sdk, local, health = samples["sdk"], samples["local"], samples["health"]
    (sdk50, sdk99), (loc50, loc99), (h50, h99) = (
        percentiles(sdk),
        percentiles(local),
        percentiles(health),
    )
    print(f"machine: {machine()}")
    print(
        f"minimal forward on {TINY}, 1 datum x {len(TOKENS) - 1} tokens, "
        f"{args.calls} calls each, interleaved"
    )
    print(f"{'path':<34}{'p50 ms':>10}{'p99 ms':>10}")
    print(f"{'SDK -> engine over HTTP':<34}{sdk50 * 1e3:>10.2f}{sdk99 * 1e3:>10.2f}")
    print(f"{'in-process TorchBackend (baseline)':<34}{loc50 * 1e3:>10.2f}{loc99 * 1e3:>10.2f}")
    print(f"{'bare GET healthz':<34}{h50 * 1e3:>10.2f}{h99 * 1e3:>10.2f}")
    print(
        f"ratio SDK/in-process: p50 {sdk50 / loc50:.2f}x, p99 {sdk99 / loc99:.2f}x; "
        f"protocol overhead p50 {(sdk50 - loc50) * 1e3:.2f} ms"
    )


if __name__ == "__main__":
    main()
