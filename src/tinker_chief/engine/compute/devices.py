"""Device and precision choice for the compute backend.

`auto` picks CUDA when present, else CPU. Precision is a `Precision` value: LoRA weights and
optimizer state are always fp32 (master weights); the frozen base runs either in fp32 or under
bf16 autocast (with bf16 base linears, `frozen_linear.py`). `float32` forces exact fp32
everywhere (for scoring that must be reproducible); `bfloat16` forces bf16.

`auto` on a CPU picks the faster of the two, measured: CPU flags do not predict it (a Xeon with
AVX512-BF16 but no AMX ran bf16 GEMMs at half its fp32 speed, the same flags on an AMD EPYC run
them 2-4x faster). A short GEMM probe at the model's own shapes (`model_gemm_shapes`) times the
kernels interleaved, a fraction of a second, and the result is cached on disk
(`<chief cache>/precision/`) keyed by everything that changes the answer: torch version, CPU
model and flags, thread count, shapes and kernels, and the environment's instruction-set caps
(`ONEDNN_MAX_CPU_ISA` and the like, `cpuinfo.isa_caps`). A CPU without native bf16 (AVX512-BF16 or
AMX) never times or picks bf16: emulated bf16 is always slower.

The probe also picks the fp32 kernel, whenever the base may compute in fp32 (`auto`, `--dtype
float32`): PyTorch's `F.linear` (MKL's sgemm in its CPU builds) or oneDNN on a prepacked weight
(`frozen_linear.py`). They are the same fp32 math apart from summation order, and their speed is
again the machine's: on a 2-core AMD EPYC, MKL ran the training shapes at 220 GFLOP/s and oneDNN
at 480, and a 16-row decode 2.5-3x slower. On CUDA `auto` is bf16 where the device supports it,
else fp32 (no probe; the engine has no fp16 path).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import torch
import torch.nn.functional as F

from tinker_chief.cpuinfo import CpuInfo, cpu_info, describe_isa_caps, isa_caps
from tinker_chief.engine.backend import InvalidRequestError
from tinker_chief.engine.compute.frozen_linear import (
    mkldnn_prepack_available,
    prepacked_linear,
    prepacked_weight,
)

DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("auto", "float32", "bfloat16")
# The kernels the probe times: fp32 through `F.linear` (MKL's sgemm), fp32 through oneDNN on a
# prepacked weight (what `FrozenLinear` runs when it wins), bf16 through `F.linear` (oneDNN).
FP32, FP32_ONEDNN, BF16 = "float32", "float32-onednn", "bfloat16"
KERNEL_LABELS = {FP32: "fp32", FP32_ONEDNN: "fp32 oneDNN", BF16: "bf16"}
GemmShape = tuple[int, int, int]  # (rows, in features, out features): rows x in @ in x out
# The probe's timing function: measured GFLOP/s per kernel name over a shape set.
GemmTimer = Callable[[Sequence[GemmShape], Sequence[str]], Mapping[str, float]]

PROBE_TOKENS = 256  # rows per GEMM: enough for the GEMM kernels' throughput, few enough to be quick
MAX_PROBE_FLOPS = 4e9  # per GEMM: fewer rows (down to 64) for wide models, so a probe stays ~1 s
PROBE_SECONDS = 0.2  # timed rounds stop after this much time (warm-up not counted) ...
PROBE_ROUNDS = (3, 50)  # ... but never fewer or more rounds than these
DEFAULT_HIDDEN, DEFAULT_INTERMEDIATE = 576, 1536  # SmolLM2-135M, the default model: no model known

log = logging.getLogger("tinker_chief.engine")


def model_gemm_shapes(config: Mapping[str, object] | None = None) -> tuple[GemmShape, ...]:
    """The decoder's projection GEMMs of a model's `config.json` (the default model's without
    one): tokens x hidden @ hidden x intermediate (MLP up/gate), intermediate x hidden (MLP down,
    and the backward through up/gate), hidden x hidden (attention projections)."""
    nested = (config or {}).get("text_config")
    text = nested if isinstance(nested, Mapping) and nested else config or {}
    hidden = _size(text.get("hidden_size"), DEFAULT_HIDDEN)
    fallback = DEFAULT_INTERMEDIATE if config is None else 4 * hidden
    intermediate = _size(text.get("intermediate_size"), fallback)
    tokens = max(64, min(PROBE_TOKENS, int(MAX_PROBE_FLOPS / (2 * hidden * intermediate))))
    return (tokens, hidden, intermediate), (tokens, intermediate, hidden), (tokens, hidden, hidden)


def _size(value: object, default: int) -> int:
    """A config's layer size; `default` where it has none."""
    return int(value) if isinstance(value, int | float | str) and value else default


DEFAULT_SHAPES = model_gemm_shapes()


def time_gemms(
    shapes: Sequence[GemmShape], kernels: Sequence[str], seconds: float = PROBE_SECONDS
) -> dict[str, float]:
    """GFLOP/s of each of `kernels` over `shapes` on the CPU (what the frozen base's linears
    would run), timed interleaved: each round runs every shape in each kernel, the order turning
    from round to round, so load from other processes hits all alike; the median round counts."""
    flops = sum(2 * rows * fan_in * fan_out for rows, fan_in, fan_out in shapes)
    generator = torch.Generator().manual_seed(0)
    calls: dict[str, list[Callable[[], torch.Tensor]]] = {}
    for kernel in kernels:
        dtype = torch.bfloat16 if kernel == BF16 else torch.float32
        calls[kernel] = []
        for rows, fan_in, fan_out in shapes:
            x = torch.randn(rows, fan_in, generator=generator).to(dtype)
            weight = torch.randn(fan_out, fan_in, generator=generator).to(dtype)
            if kernel == FP32_ONEDNN:
                packed = prepacked_weight(weight)
                calls[kernel].append(functools.partial(prepacked_linear, x, packed, None))
            else:
                calls[kernel].append(functools.partial(F.linear, x, weight))

    def one_pass(kernel: str) -> float:
        started = time.perf_counter()
        for call in calls[kernel]:
            call()
        return time.perf_counter() - started

    with torch.no_grad():
        for kernel in kernels:  # oneDNN builds its kernels on the first call of a shape
            one_pass(kernel)
        rounds: dict[str, list[float]] = {kernel: [] for kernel in kernels}
        least, most = PROBE_ROUNDS
        deadline = time.perf_counter() + seconds
        for count in range(most):
            if count >= least and time.perf_counter() > deadline:
                break
            turn = count % len(kernels)
            for kernel in [*kernels[turn:], *kernels[:turn]]:
                rounds[kernel].append(one_pass(kernel))
    return {kernel: flops / statistics.median(times) / 1e9 for kernel, times in rounds.items()}


@dataclass(frozen=True)
class MachineFacts:
    """What a probe's result depends on besides the shapes: its cache key."""

    cpu: CpuInfo
    torch_version: str
    threads: int
    # Instruction-set caps set in the environment (`cpuinfo.isa_caps`): under
    # ONEDNN_MAX_CPU_ISA=AVX512_CORE_VNNI the same CPU runs bf16 GEMMs 6x slower.
    isa_caps: tuple[tuple[str, str], ...] = ()

    @classmethod
    def here(cls) -> MachineFacts:
        caps = tuple(sorted(isa_caps().items()))
        return cls(cpu_info(), torch.__version__, torch.get_num_threads(), caps)

    def probe_key(self, shapes: Sequence[GemmShape], kernels: Sequence[str]) -> dict[str, object]:
        flags = hashlib.sha256(" ".join(sorted(self.cpu.flags)).encode()).hexdigest()[:16]
        key: dict[str, object] = {
            "torch": self.torch_version,
            "cpu": self.cpu.model,
            "cpu_flags": flags,
            "threads": self.threads,
            "shapes": [list(shape) for shape in shapes],
            "kernels": list(kernels),
        }
        if self.isa_caps:  # absent when unset, so the caches of uncapped runs stay valid
            key["isa_caps"] = dict(self.isa_caps)
        return key

    def kernels(self, dtype: str) -> tuple[str, ...]:
        """What a probe for `--dtype dtype` times here: fp32 by `F.linear`, by oneDNN where this
        torch can prepack an fp32 weight, and bf16 under `auto` on a CPU with native bf16."""
        onednn = (FP32_ONEDNN,) if mkldnn_prepack_available(torch.float32) else ()
        bf16 = (BF16,) if dtype == "auto" and self.cpu.native_bf16 else ()
        return (FP32, *onednn, *bf16)


@dataclass(frozen=True)
class GemmProbe:
    """The timed kernels' GEMM throughput at one shape set on this machine."""

    gflops: Mapping[str, float] = field(hash=False)  # kernel (FP32, FP32_ONEDNN, BF16) -> GFLOP/s
    shapes: tuple[GemmShape, ...]
    cache_file: Path | None
    reused: bool  # read from the cache rather than measured now

    @property
    def fp32_kernel(self) -> str:
        """The faster fp32 kernel; `F.linear` (no packed copy) on a tie."""
        return FP32_ONEDNN if self.gflops.get(FP32_ONEDNN, 0.0) > self.gflops[FP32] else FP32

    @property
    def faster(self) -> str:
        """The dtype with the higher throughput, each in its faster kernel; fp32 (exact) on a
        tie and where bf16 was not timed."""
        return "bfloat16" if self.gflops.get(BF16, 0.0) > self.gflops[self.fp32_kernel] else FP32

    def describe(self) -> str:
        shapes = ", ".join("x".join(map(str, shape)) for shape in self.shapes)
        how = f"cached in {self.cache_file}" if self.reused else "measured now"
        rates = ", ".join(
            f"{KERNEL_LABELS[kernel]} {self.gflops[kernel]:.1f} GFLOP/s"
            for kernel in (BF16, FP32, FP32_ONEDNN)
            if kernel in self.gflops
        )
        return f"GEMM probe at {shapes}: {rates} ({how})"


def default_probe_cache() -> Path:
    """`<chief cache>/precision`, beside the converted models (`$CHIEF_CACHE_DIR`)."""
    from tinker_chief.models import cache_dir

    return cache_dir().parent / "precision"


def probe_gemms(
    shapes: Sequence[GemmShape],
    kernels: Sequence[str],
    *,
    machine: MachineFacts | None = None,
    measure: GemmTimer = time_gemms,
    cache_root: Path | None = None,
) -> GemmProbe:
    """The cached probe for this machine, `shapes` and `kernels`, else a new measurement, then
    cached."""
    machine = machine or MachineFacts.here()
    shapes = tuple((int(rows), int(fan_in), int(fan_out)) for rows, fan_in, fan_out in shapes)
    key = machine.probe_key(shapes, kernels)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    path = (cache_root or default_probe_cache()) / f"{digest}.json"
    cached = _read_probe(path, key, kernels)
    if cached is not None:
        return GemmProbe(cached, shapes, path, reused=True)
    measured = measure(shapes, kernels)
    gflops = {kernel: float(measured[kernel]) for kernel in kernels}
    measured_at = datetime.now(UTC).isoformat(timespec="seconds")
    entry = {"key": key, "gflops": gflops, "measured_at": measured_at}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = path.with_suffix(f".{os.getpid()}.tmp")
        staging.write_text(json.dumps(entry, indent=2) + "\n")
        os.replace(staging, path)
    except OSError as error:  # a read-only cache only costs the next engine another probe
        log.warning("could not cache the precision probe in %s: %s", path, error)
        return GemmProbe(gflops, shapes, None, reused=False)
    return GemmProbe(gflops, shapes, path, reused=False)


def _read_probe(
    path: Path, key: dict[str, object], kernels: Sequence[str]
) -> dict[str, float] | None:
    """The cached GFLOP/s for exactly `key`; None when absent, damaged or another key's."""
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    gflops = entry.get("gflops") if isinstance(entry, dict) and entry.get("key") == key else None
    if not isinstance(gflops, dict) or not all(isinstance(gflops.get(k), float) for k in kernels):
        return None
    return {kernel: float(gflops[kernel]) for kernel in kernels}


@dataclass(frozen=True)
class Precision:
    """Where the model runs, which dtype autocast uses (None: plain fp32) and, in fp32, which
    kernel the base's linears run (`FP32`: `F.linear`, `FP32_ONEDNN`: oneDNN, prepacked), and why.

    `pending`: a CPU choice that needs the probe, before any model is known; the backend settles
    it (`choose_precision` with the model's shapes) before it loads the first base."""

    device: str
    autocast_dtype: torch.dtype | None
    basis: str = ""
    probe: GemmProbe | None = None
    pending: bool = False
    requested: str = "auto"  # the `--dtype` it was chosen for (a pending choice is settled by it)

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device, dtype=self.autocast_dtype)

    @property
    def fp32_kernel(self) -> str:
        """What the base's fp32 linears run: the probe's faster fp32 kernel, else `F.linear`."""
        return self.probe.fp32_kernel if self.probe is not None else FP32

    @property
    def name(self) -> str:
        if self.pending and self.requested == "float32":
            return "float32 (its kernel chosen when the first base model loads)"
        if self.pending:
            return "auto (chosen when the first base model loads)"
        return "float32" if self.autocast_dtype is None else "bfloat16-autocast"

    @property
    def kv_dtype(self) -> torch.dtype:
        """What the sampler's KV cache stores (`kv_cache`: the autocast dtype, else fp32)."""
        return self.autocast_dtype or torch.float32

    def stats(self) -> dict[str, object]:
        """What `engine_stats` reports: device, precision, why, and the probe's GFLOP/s."""
        stats: dict[str, object] = {"device": self.device, "precision": self.name}
        stats["precision_basis"] = self.basis
        if self.autocast_dtype is None and not self.pending:
            stats["fp32_kernel"] = self.fp32_kernel
        if self.probe is not None:
            gflops = self.probe.gflops
            stats["gemm_gflops"] = {name: round(rate, 1) for name, rate in gflops.items()}
        return stats


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


def choose_precision(
    device: str = "auto",
    dtype: str = "auto",
    shapes: Sequence[GemmShape] | None = DEFAULT_SHAPES,
    *,
    machine: MachineFacts | None = None,
    measure: GemmTimer = time_gemms,
    cache_root: Path | None = None,
) -> Precision:
    """Resolve the user's `--device`/`--dtype` into a concrete `Precision`.

    On a CPU, `auto` and `float32` run (or read from the cache) the GEMM probe at `shapes`, over
    the kernels `MachineFacts.kernels` names (nothing to probe where that is `F.linear` alone);
    `shapes=None` means the model is not known yet, and then that case returns a pending
    `Precision`. `machine`, `measure` and `cache_root` replace this machine's facts, the timing
    function and the cache directory (tests)."""
    if device not in DEVICES:
        raise InvalidRequestError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    if dtype not in DTYPES:
        raise InvalidRequestError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    elif device == "cuda" and not torch.cuda.is_available():
        raise InvalidRequestError("device 'cuda' was requested but no CUDA device is available")
    if dtype == "bfloat16" or (dtype == "float32" and device == "cuda"):
        forced = torch.bfloat16 if dtype == "bfloat16" else None
        return Precision(device, forced, f"--dtype {dtype}", requested=dtype)
    if device == "cuda":
        if torch.cuda.is_bf16_supported():
            return Precision(device, torch.bfloat16, "auto: CUDA with bf16 support")
        return Precision(device, None, "auto: CUDA without bf16 support")
    machine = machine or MachineFacts.here()
    basis = "--dtype float32" if dtype == "float32" else "auto"
    if dtype == "auto" and not machine.cpu.native_bf16:
        basis = "auto: no native bf16 on this CPU (emulated bf16 is slower)"
    if machine.isa_caps:
        basis += f" under {describe_isa_caps(dict(machine.isa_caps))}"
    kernels = machine.kernels(dtype)
    if len(kernels) == 1:
        return Precision(device, None, basis, requested=dtype)
    if shapes is None:
        why = f"{basis}; a GEMM probe at the first base model's shapes"
        return Precision(device, None, why, pending=True, requested=dtype)
    probe = probe_gemms(shapes, kernels, machine=machine, measure=measure, cache_root=cache_root)
    chosen = torch.bfloat16 if probe.faster == "bfloat16" else None
    why = f"{basis}: {probe.describe()}"
    return Precision(device, chosen, why, probe, requested=dtype)
