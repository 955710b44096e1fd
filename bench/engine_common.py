"""Shared pieces of the engine benchmarks (bench/engine_train.py, bench/engine_sample.py).

Timing helpers, the machine description printed with every result (with the CPU's native bf16
flags: they decide whether the engine's `auto` may pick bf16), both precisions' GEMM peaks and
model-FLOPs utilisation against the faster one (the machine's best), and the context manager
that starts a real `chief engine serve` subprocess through the server's launcher and connects
the unmodified tinker SDK to it.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import torch

from tinker_chief.cpuinfo import cpu_info, describe_isa_caps, isa_caps
from tinker_chief.engine.compute.devices import BF16, FP32, MachineFacts, time_gemms

Round = TypeVar("Round")
PEAK_SHAPE = (1024, 1024, 1024)  # large enough to reach a CPU's GEMM peak


def machine() -> str:
    cpu = cpu_info()
    native = f"native bf16: {', '.join(cpu.bf16_flags)}" if cpu.native_bf16 else "no native bf16"
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    torch_part = f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    capped = f", kernels capped by {describe_isa_caps(caps)}" if (caps := isa_caps()) else ""
    return f"{cpu.model} ({native}), {os.cpu_count()} CPUs, {gpu}, {torch_part}{capped}"


def load_average() -> str:
    """The machine's load at the end of a run, as a benchmark's result line says it."""
    loads = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return f"load average at the end (1, 5, 15 min): {loads} on {os.cpu_count()} CPUs (other jobs)"


def timed(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median wall seconds of `fn` after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def median_round(rounds: list[Round], ratio: Callable[[Round], float]) -> Round:
    """The round whose `ratio` is the median (the upper one of an even count): a bench reports
    that round's times and results, so every number it prints comes from one round."""
    return sorted(rounds, key=ratio)[len(rounds) // 2]


def gemm_flops_per_s(dtype: torch.dtype, device: str, size: int = 1024, repeats: int = 3) -> float:
    """Measured dense matmul throughput: the denominator of model-FLOPs utilisation.

    1024^3 is large enough to reach a CPU's GEMM peak; bf16 on a CPU without native bf16 is
    emulated and slow, so bigger sizes only cost time.
    """
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)

    def run() -> None:
        torch.mm(a, b)
        if device == "cuda":
            torch.cuda.synchronize()

    return 2 * size**3 / timed(run, repeats)


def gemm_peaks(device: str) -> dict[str, float]:
    """FLOP/s of a 1024^3 matmul per kernel, measured now: MFU's denominators. fp32 by
    `F.linear` and (on CPU, where this torch can) by prepacked oneDNN, and bf16 (on CPU only
    with native bf16: emulated, it is never the fastest).

    On a CPU the kernels are those the engine's probe times (`MachineFacts.kernels`), timed
    interleaved by its own `devices.time_gemms`, so load from other processes hits them alike.
    """
    if device == "cpu":  # the kernels the engine's probe would time here
        timed_now = time_gemms([PEAK_SHAPE], MachineFacts.here().kernels("auto"), seconds=1.0)
        return {name: rate * 1e9 for name, rate in timed_now.items()}
    return {name: gemm_flops_per_s(getattr(torch, name), device) for name in (FP32, BF16)}


def mfu_text(achieved: float, peaks: dict[str, float]) -> str:
    """Model-FLOPs utilisation against the fastest GEMM (the machine's best), naming them all."""
    best, *others = sorted(peaks, key=peaks.__getitem__, reverse=True)
    rates = "; ".join(f"{name} {peaks[name] / 1e9:.1f} GFLOP/s" for name in [best, *others])
    return (
        f"MFU {100 * achieved / peaks[best]:.1f}% of the fastest GEMM, {best} "
        f"({rates}, all measured in this run at {'x'.join(map(str, PEAK_SHAPE))})"
    )


@contextlib.contextmanager
def sdk_engine(dtype: str, device: str = "auto") -> Iterator[object]:
    """A real engine subprocess and a tinker.ServiceClient connected to it."""
    with engine_and_sdk(dtype, device) as (_, client):
        yield client


@contextlib.contextmanager
def engine_and_sdk(dtype: str, device: str = "auto") -> Iterator[tuple[object, object]]:
    """`sdk_engine`, also handing out the engine's launcher handle (its URL and API key)."""
    import tinker

    from tinker_chief.engine.server.launcher import start_engine

    with tempfile.TemporaryDirectory(prefix="bench-engine-") as state:
        handle = start_engine(state_dir=Path(state), device=device, dtype=dtype)
        client = tinker.ServiceClient(base_url=handle.base_url, api_key=handle.api_key_for_clients)
        try:
            yield handle, client
        finally:
            client.close(
                "success"
            ).result()  # stops the SDK's heartbeat thread before the engine goes
            handle.stop()
