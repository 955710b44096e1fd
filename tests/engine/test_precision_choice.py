"""`--dtype auto` by measurement: a GEMM probe at the model's shapes picks the faster of bf16 and
fp32 on this machine, and in fp32 the faster of `F.linear` and oneDNN, cached on disk per torch
version, CPU, threads, shapes and kernels; a CPU without native bf16 never times bf16; `--dtype`
overrides the dtype (`float32` still probes its kernel). The probe's timing function is injected
where a test needs a known winner, and a real engine reports the choice and the numbers in its
stats."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest
import tinker
import torch

from tinker_chief.cpuinfo import CpuInfo
from tinker_chief.engine.compute.devices import (
    BF16,
    FP32,
    FP32_ONEDNN,
    MachineFacts,
    choose_precision,
    model_gemm_shapes,
)
from tinker_chief.engine.compute.frozen_linear import mkldnn_prepack_available
from tinker_chief.models import TINY_MODEL, load_model_config

NATIVE = MachineFacts(CpuInfo("Test CPU", frozenset({"avx512f", "avx512_bf16"})), "2.13.0+cpu", 2)
EMULATED = MachineFacts(CpuInfo("Test CPU", frozenset({"avx2", "fma"})), "2.13.0+cpu", 2)
SHAPES = model_gemm_shapes({"hidden_size": 64, "intermediate_size": 128})


# Whether this torch can run fp32 on prepacked oneDNN weights (every x86 build we install).
ONEDNN = mkldnn_prepack_available(torch.float32)
needs_onednn = pytest.mark.skipif(not ONEDNN, reason="this torch cannot prepack an fp32 weight")


class Timer:
    """A probe timing function with fixed answers, counting its calls and the kernels asked."""

    def __init__(self, float32: float, bfloat16: float, onednn: float = 0.0) -> None:
        self.rates = {FP32: float32, BF16: bfloat16, FP32_ONEDNN: onednn}
        self.calls = 0
        self.asked: set[str] = set()

    def __call__(self, shapes, kernels):
        self.calls += 1
        self.asked |= set(kernels)
        return {kernel: self.rates[kernel] for kernel in kernels}


def _choose(timer: Timer, cache: Path, machine: MachineFacts = NATIVE, dtype="auto", shapes=SHAPES):
    return choose_precision("cpu", dtype, shapes, machine=machine, measure=timer, cache_root=cache)


@pytest.mark.parametrize(
    ("float32", "bfloat16", "expected"),
    [(230.0, 175.0, "float32"), (100.0, 400.0, "bfloat16-autocast"), (200.0, 200.0, "float32")],
)
def test_auto_picks_the_faster_precision(tmp_path, float32, bfloat16, expected):
    timer = Timer(float32, bfloat16)
    precision = _choose(timer, tmp_path)
    assert precision.name == expected and timer.calls == 1
    stats = precision.stats()
    assert stats["gemm_gflops"] == {kernel: timer.rates[kernel] for kernel in timer.asked}
    assert timer.asked == ({FP32, BF16, FP32_ONEDNN} if ONEDNN else {FP32, BF16})
    assert f"bf16 {bfloat16:.1f} GFLOP/s, fp32 {float32:.1f} GFLOP/s" in stats["precision_basis"]
    assert "256x64x128, 256x128x64, 256x64x64" in stats["precision_basis"]  # the model's shapes


def test_a_cpu_without_native_bf16_never_times_nor_picks_bf16(tmp_path):
    timer = Timer(1.0, 1000.0, onednn=0.5)  # bf16 "faster": it must not even be asked
    precision = _choose(timer, tmp_path, machine=EMULATED)
    assert precision.name == "float32" and BF16 not in timer.asked
    assert precision.fp32_kernel == FP32 and "no native bf16" in precision.basis
    assert timer.calls == (1 if ONEDNN else 0)  # only fp32's two kernels, where there are two
    unknown_model = _choose(timer, tmp_path, machine=EMULATED, shapes=None)
    assert unknown_model.pending == ONEDNN and BF16 not in timer.asked


@needs_onednn
@pytest.mark.parametrize(
    ("float32", "onednn", "bfloat16", "dtype", "kernel"),
    [
        (200.0, 450.0, 300.0, "float32", FP32_ONEDNN),  # bf16 loses to fp32's faster kernel
        (200.0, 150.0, 100.0, "float32", FP32),
        (200.0, 450.0, 900.0, "bfloat16-autocast", FP32_ONEDNN),
    ],
)
def test_the_probe_picks_fp32s_faster_kernel(tmp_path, float32, onednn, bfloat16, dtype, kernel):
    precision = _choose(Timer(float32, bfloat16, onednn), tmp_path)
    assert (precision.name, precision.fp32_kernel) == (dtype, kernel)
    assert f"fp32 oneDNN {onednn:.1f} GFLOP/s" in precision.basis
    assert precision.stats().get("fp32_kernel") == (kernel if dtype == "float32" else None)


def test_the_cached_probe_is_reused_until_its_key_changes(tmp_path):
    first = _choose(Timer(100.0, 300.0), tmp_path)
    assert first.name == "bfloat16-autocast" and not first.probe.reused
    (cache_file,) = tmp_path.iterdir()
    cached = json.loads(cache_file.read_text())["gflops"]
    assert cached == {FP32: 100.0, BF16: 300.0} | ({FP32_ONEDNN: 0.0} if ONEDNN else {})

    again = Timer(300.0, 100.0)  # a new measurement would flip the choice
    reused = _choose(again, tmp_path)
    assert again.calls == 0 and reused.name == "bfloat16-autocast" and reused.probe.reused
    assert str(cache_file) in reused.basis

    changes = [
        dataclasses.replace(NATIVE, torch_version="2.14.0+cpu"),
        dataclasses.replace(NATIVE, cpu=CpuInfo("Other CPU", NATIVE.cpu.flags)),
        dataclasses.replace(NATIVE, cpu=CpuInfo("Test CPU", NATIVE.cpu.flags | {"amx_bf16"})),
        dataclasses.replace(NATIVE, threads=1),
        dataclasses.replace(NATIVE, isa_caps=(("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_VNNI"),)),
    ]
    for machine in changes:
        timer = Timer(300.0, 100.0)
        precision = _choose(timer, tmp_path, machine=machine)
        assert precision.name == "float32" and timer.calls == 1, machine
    assert "auto under ONEDNN_MAX_CPU_ISA=AVX512_CORE_VNNI:" in precision.basis  # the capped one
    other_shapes = Timer(300.0, 100.0)
    assert _choose(other_shapes, tmp_path, shapes=model_gemm_shapes()).name == "float32"
    assert other_shapes.calls == 1
    assert len(list(tmp_path.iterdir())) == 1 + len(changes) + 1  # one entry per key


def test_the_machine_facts_carry_the_environments_instruction_set_caps(monkeypatch):
    """ONEDNN_MAX_CPU_ISA and its kind change what the same CPU measures (AVX512_CORE_VNNI takes
    bf16 away from oneDNN), so they are part of the probe's key; unset, the key is as it was."""
    for name in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MKL_ENABLE_INSTRUCTIONS", " ")  # blank is unset
    plain = MachineFacts.here()
    assert plain.isa_caps == () and "isa_caps" not in plain.probe_key(SHAPES, [FP32])
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_VNNI")
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    capped = MachineFacts.here()
    assert capped.isa_caps == (
        ("ATEN_CPU_CAPABILITY", "avx2"),
        ("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_VNNI"),
    )
    assert capped.probe_key(SHAPES, [FP32])["isa_caps"] == dict(capped.isa_caps)


def test_a_damaged_cache_entry_is_measured_again(tmp_path):
    _choose(Timer(100.0, 300.0), tmp_path)
    (cache_file,) = tmp_path.iterdir()
    cache_file.write_text('{"key": ')
    timer = Timer(300.0, 100.0)
    assert _choose(timer, tmp_path).name == "float32" and timer.calls == 1


def test_dtype_overrides_the_probe(tmp_path):
    # The measurement favours the other side: the flag must win without bf16 being asked.
    for machine in (NATIVE, EMULATED):
        timer = Timer(100.0, 300.0)
        precision = _choose(timer, tmp_path, machine=machine, dtype="float32")
        assert precision.name == "float32" and precision.basis.startswith("--dtype float32")
        assert BF16 not in timer.asked  # only fp32's kernels are timed
        timer = Timer(300.0, 100.0, onednn=600.0)
        precision = _choose(timer, tmp_path, machine=machine, dtype="bfloat16")
        assert precision.name == "bfloat16-autocast" and precision.basis == "--dtype bfloat16"
        assert timer.calls == 0


def test_an_unknown_model_defers_the_probe_on_a_native_bf16_cpu(tmp_path):
    timer = Timer(100.0, 300.0)
    pending = _choose(timer, tmp_path, shapes=None)
    assert pending.pending and timer.calls == 0 and pending.name.startswith("auto")


def test_a_real_probe_returns_a_valid_choice_and_writes_the_cache(tmp_path):
    here = MachineFacts.here()
    # Forced to probe on any CPU (an emulated bf16 is slow, but these shapes are small).
    native = CpuInfo(here.cpu.model, here.cpu.flags | {"avx512_bf16"})
    forced = dataclasses.replace(here, cpu=native)
    precision = choose_precision("cpu", "auto", SHAPES, machine=forced, cache_root=tmp_path)
    kernels = forced.kernels("auto")
    assert set(precision.stats()["gemm_gflops"]) == set(kernels)
    (cache_file,) = tmp_path.iterdir()
    entry = json.loads(cache_file.read_text())
    # The choice is made on the measured numbers (the stats round them to 0.1: a close call at
    # these small shapes flipped under a loaded CI run).
    gflops = entry["gflops"]
    assert set(gflops) == set(kernels) and all(value > 0 for value in gflops.values())
    fp32 = max(gflops[FP32], gflops.get(FP32_ONEDNN, 0.0))
    assert precision.name == ("bfloat16-autocast" if gflops[BF16] > fp32 else "float32")
    assert entry["key"] == forced.probe_key(SHAPES, kernels)
    assert entry["key"]["torch"] == here.torch_version


def test_the_engine_reports_its_choice_at_the_served_models_shapes(tmp_path, monkeypatch):
    """A real engine with `--dtype auto`: until a base loads the choice is pending; then its stats
    carry the precision, why, and the timed kernels' GFLOP/s at the tiny model's shapes (bf16's
    only on a CPU with native bf16), which its log and the probe cache hold too."""
    from tinker_chief.cpuinfo import cpu_info
    from tinker_chief.engine.server.launcher import engine_stats, start_engine

    shared = Path(os.environ["CHIEF_CACHE_DIR"])
    cache = tmp_path / "cache"
    for name in ("models", "engine-keys"):  # the built models, and where the engine's key goes
        (shared / name).mkdir(mode=0o700, parents=True, exist_ok=True)
        cache.mkdir(exist_ok=True)
        (cache / name).symlink_to((shared / name).resolve())
    monkeypatch.setenv("CHIEF_CACHE_DIR", str(cache))
    with start_engine(state_dir=tmp_path / "state", device="cpu", dtype="auto") as handle:
        native = cpu_info().native_bf16
        kernels = MachineFacts.here().kernels("auto")
        before = engine_stats(handle.base_url, handle.api_key_for_clients)
        assert before is not None
        assert before["precision"].startswith("auto" if len(kernels) > 1 else "float32")
        service = tinker.ServiceClient(base_url=handle.base_url, api_key=handle.api_key_for_clients)
        try:
            sampler = service.create_sampling_client(base_model=TINY_MODEL).result()
            params = tinker.SamplingParams(max_tokens=1, temperature=0.0)
            sampler.sample(tinker.ModelInput.from_ints([3, 4, 5]), 1, params).result()
        finally:
            service.close("success").result()
        after = engine_stats(handle.base_url, handle.api_key_for_clients)
        log = handle.log_file.read_text()
    assert after is not None
    if not native:
        assert after["precision"] == "float32" and "no native bf16" in after["precision_basis"]
    if len(kernels) == 1:
        assert "gemm_gflops" not in after and after["fp32_kernel"] == FP32
        return
    (cache_file,) = (cache / "precision").iterdir()
    # The cache holds the probe's own numbers; the stats round them to 0.1, too coarse to tell
    # a close call (at the tiny model's shapes, on a loaded machine, they can be that close).
    gflops = json.loads(cache_file.read_text())["gflops"]
    assert after["gemm_gflops"] == {kernel: round(rate, 1) for kernel, rate in gflops.items()}
    assert set(gflops) == set(kernels)
    fp32_kernel = max((FP32, FP32_ONEDNN), key=lambda kernel: gflops.get(kernel, 0.0))
    faster = "bfloat16-autocast" if gflops.get(BF16, 0.0) > gflops[fp32_kernel] else "float32"
    assert after["precision"] == faster
    if faster == "float32":
        assert after["fp32_kernel"] == fp32_kernel
    tiny_shapes = model_gemm_shapes(load_model_config(TINY_MODEL))
    shapes = ", ".join("x".join(map(str, shape)) for shape in tiny_shapes)
    assert f"GEMM probe at {shapes}" in after["precision_basis"]
    assert f"precision: {faster} (auto" in log and f"GEMM probe at {shapes}" in log
