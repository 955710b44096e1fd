"""Shared pieces of the engine benchmarks (bench/engine_train.py, bench/engine_sample.py).

Timing helpers, the machine description printed with every result, and the context manager
that starts a real `chief engine serve` subprocess through the server's launcher and connects
the unmodified tinker SDK to it.
"""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{cpu}, {os.cpu_count()} CPUs, {gpu}, torch {torch.__version__}, {torch.get_num_threads()} threads"


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
            client.close("success").result()  # stops the SDK's heartbeat thread before the engine goes
            handle.stop()
