"""This machine's CPU as chief keys its measurements: the model name and the feature flags.

A shared leaf (it imports nothing of ours): the engine keys its precision probe on it and
`chief plan` its throughput calibration, so both read /proc/cpuinfo the same way.
`isa_caps` reads the environment variables that make the kernels use less of the CPU than its
flags say, so a measurement taken under one is not mistaken for the CPU's own.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # bf16 matmuls in hardware: AVX512-BF16, AMX-BF16
# Caps on the instruction sets of oneDNN (PyTorch's bf16 and prepacked matmuls; DNNL_ is its old
# prefix), ATen's vectorised kernels and MKL's sgemm.
ISA_CAP_VARIABLES = (
    "ONEDNN_MAX_CPU_ISA",
    "DNNL_MAX_CPU_ISA",
    "ATEN_CPU_CAPABILITY",
    "MKL_ENABLE_INSTRUCTIONS",
)


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


def isa_caps() -> dict[str, str]:
    """The instruction-set caps set in this environment (`ISA_CAP_VARIABLES`), e.g.
    `{"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_VNNI"}`; empty when the kernels may use the whole CPU."""
    caps = {name: os.environ.get(name, "").strip() for name in ISA_CAP_VARIABLES}
    return {name: value for name, value in caps.items() if value}


def describe_isa_caps(caps: Mapping[str, str]) -> str:
    """`caps` as a shell would set them: `ONEDNN_MAX_CPU_ISA=AVX512_CORE_VNNI`."""
    return " ".join(f"{name}={value}" for name, value in sorted(caps.items()))
