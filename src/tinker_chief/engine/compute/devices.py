"""Device and precision choice for the compute backend.

`auto` picks CUDA when present, else CPU. Precision is a `Precision` value: LoRA weights and
optimizer state are always fp32 (master weights); the frozen base runs under bf16 autocast when
the hardware does bf16 natively (CUDA, or a CPU with AVX512-BF16/AMX), because that is where
autocast is a speed-up; on CPUs without it bf16 is emulated and slower, so `auto` stays fp32.
`float32` forces exact fp32 everywhere (for scoring that must be reproducible).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from functools import lru_cache

import torch

from tinker_chief.engine.backend import InvalidRequestError

DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("auto", "float32", "bfloat16")


@dataclass(frozen=True)
class Precision:
    """Where the model runs and which dtype autocast uses (None: plain fp32)."""

    device: str
    autocast_dtype: torch.dtype | None

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device, dtype=self.autocast_dtype)

    @property
    def name(self) -> str:
        return "float32" if self.autocast_dtype is None else "bfloat16-autocast"

    @property
    def kv_dtype(self) -> torch.dtype:
        """What the sampler's KV cache stores (`kv_cache`: the autocast dtype, else fp32)."""
        return self.autocast_dtype or torch.float32


# Of the memory free at start; the rest is for weights, adapters and activations.
SAMPLING_MEMORY_SHARE = 0.5


def default_sampling_memory(device: str) -> int:
    """Bytes of KV cache the sampler may hold at once unless told: half the device memory free
    when the engine starts (GPU memory on CUDA, else the RAM the kernel calls available)."""
    if device == "cuda":
        free, _ = torch.cuda.mem_get_info()
    else:
        free = _available_ram()
    return int(free * SAMPLING_MEMORY_SHARE)


def _available_ram() -> int:
    try:
        with open("/proc/meminfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:  # no /proc (not Linux): free pages where the system says, else all of them
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError):
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


@lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True when the CPU executes bf16 matmuls in hardware (AVX512-BF16 or AMX-BF16)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            flags = handle.read()
    except OSError:
        flags = ""
    return "amx_bf16" in flags or "avx512_bf16" in flags


def choose_precision(device: str = "auto", dtype: str = "auto") -> Precision:
    """Resolve the user's `--device`/`--dtype` into a concrete `Precision`."""
    if device not in DEVICES:
        raise InvalidRequestError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    if dtype not in DTYPES:
        raise InvalidRequestError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    elif device == "cuda" and not torch.cuda.is_available():
        raise InvalidRequestError("device 'cuda' was requested but no CUDA device is available")
    if dtype == "float32":
        return Precision(device, None)
    if dtype == "bfloat16":
        return Precision(device, torch.bfloat16)
    native = torch.cuda.is_bf16_supported() if device == "cuda" else cpu_has_native_bf16()
    return Precision(device, torch.bfloat16 if native else None)
