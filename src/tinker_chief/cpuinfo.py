"""This machine's CPU as chief keys its measurements: the model name and the feature flags.

A shared leaf (it imports nothing of ours): the engine keys its precision probe on it and
`chief plan` its throughput calibration, so both read /proc/cpuinfo the same way.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # bf16 matmuls in hardware: AVX512-BF16, AMX-BF16


@dataclass(frozen=True)
class CpuInfo:
    model: str
    flags: frozenset[str]

    @property
    def bf16_flags(self) -> list[str]:
        return [flag for flag in BF16_FLAGS if flag in self.flags]

    @property
    def native_bf16(self) -> bool:
        """True when the CPU executes bf16 matmuls in hardware (AVX512-BF16 or AMX-BF16)."""
        return bool(self.bf16_flags)


@lru_cache(maxsize=1)
def cpu_info() -> CpuInfo:
    """The first processor's `model name` and `flags` (`Features` on ARM) from /proc/cpuinfo; the
    platform's processor name and no flags where there is no /proc/cpuinfo."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return CpuInfo(platform.processor() or platform.machine(), frozenset())
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    flags = fields.get("flags", fields.get("Features", ""))
    return CpuInfo(fields.get("model name", platform.machine()), frozenset(flags.split()))
