"""SpillStore: evicted snapshot adapters on disk, within a byte budget; and the sampling
service's answers when a snapshot could not be kept."""

from __future__ import annotations

import pytest
import torch
from peft import LoraConfig

from tinker_chief.engine.backend import (
    AdamStep,
    LoraSettings,
    NotFoundError,
    SampleRequest,
    SamplingSettings,
)
from tinker_chief.engine.compute import TorchBackend, spill
from tinker_chief.engine.compute.spill import SpillStore

from compute_support import TINY_MODEL, fresh_id, sft_batch


def weights(seed: int) -> dict[str, torch.Tensor]:
    return {"lora_A.weight": torch.randn(4, 64, generator=torch.Generator().manual_seed(seed))}


def _disk_full(*args, **kwargs):
    raise OSError(28, "No space left on device")


def test_read_gives_back_what_was_put_and_forget_removes_the_file():
    store = SpillStore()
    config = LoraConfig(r=4)
    store.put("base@s1", "base", config, weights(1))
    store.put("other@s1", "other", config, weights(2))  # same slot name on another base
    base_name, got_config, got = store.read("base@s1")
    assert (base_name, got_config.r) == ("base", 4)
    assert torch.equal(got["lora_A.weight"], weights(1)["lora_A.weight"])
    assert "base@s1" in store  # kept until the caller has loaded it
    store.forget("base@s1")
    assert "base@s1" not in store and "other@s1" in store
    assert torch.equal(store.read("other@s1")[2]["lora_A.weight"], weights(2)["lora_A.weight"])
    store.forget("other@s1")
    assert not any(store._directory().iterdir())


def test_oldest_spills_are_dropped_past_the_byte_budget():
    store = SpillStore(max_bytes=2500)  # room for two ~1 KB spills
    for i in range(4):
        store.put(f"k{i}", "base", LoraConfig(r=4), weights(i))
    assert [key in store for key in ("k0", "k1", "k2", "k3")] == [False, False, True, True]
    assert store.was_dropped("k0") and store.was_dropped("k1") and not store.was_dropped("k3")
    assert len(list(store._directory().iterdir())) == 2


def test_unwritable_and_vanished_spills_count_as_dropped(monkeypatch):
    store = SpillStore()
    store.put("kept", "base", LoraConfig(r=4), weights(0))
    store._entries["kept"].path.unlink()  # e.g. a temp-dir cleaner
    assert store.read("kept") is None and store.was_dropped("kept") and "kept" not in store

    monkeypatch.setattr(spill, "save_file", _disk_full)
    store.put("unwritten", "base", LoraConfig(r=4), weights(1))
    assert store.was_dropped("unwritten") and "unwritten" not in store
    assert not any(store._directory().iterdir())


def _snapshots(backend: TorchBackend, count: int) -> list[str]:
    model_id = fresh_id("spill")
    backend.create_training_model(model_id, TINY_MODEL, LoraSettings(rank=4, seed=0))
    keys = []
    for seed in range(count):
        backend.forward_backward(model_id, sft_batch(seed), "cross_entropy", {}, False)
        backend.optim_step(model_id, AdamStep(learning_rate=0.05))
        keys.append(backend.snapshot_for_sampling(model_id))
    return keys


def _sample(backend: TorchBackend, key: str):
    settings = SamplingSettings(max_tokens=3, temperature=0.0)
    return backend.sample([SampleRequest(key, (1, 72, 101), 1, settings)])[0].sequences[0]


@pytest.mark.parametrize("cause", ["over the budget", "disk full"])
def test_a_snapshot_that_could_not_be_kept_is_reported_released_and_others_still_sample(
    cause, monkeypatch
):
    from tinker_chief.engine.compute import sampler_pool

    monkeypatch.setattr(sampler_pool, "MAX_ADAPTER_SAMPLERS", 1)
    if cause == "over the budget":
        monkeypatch.setattr(spill, "MAX_SPILL_BYTES", 1)  # keeps only the newest spill
    else:
        monkeypatch.setattr(spill, "save_file", _disk_full)
    backend = TorchBackend(device="cpu", dtype="float32")
    keys = _snapshots(backend, 3)  # keys[0] and keys[1] are evicted; keys[0] is not kept
    with pytest.raises(NotFoundError, match="was released.*save_weights_for_sampler"):
        _sample(backend, keys[0])
    assert len(_sample(backend, keys[2]).tokens) == 3
    if cause == "over the budget":
        assert len(_sample(backend, keys[1]).tokens) == 3  # the newest spill came back


def test_sampler_slots_stay_frozen_after_sampling():
    backend = TorchBackend(device="cpu", dtype="float32")
    key = _snapshots(backend, 1)[0]
    _sample(backend, key)
    ref = backend.samplers._adapters[key]
    host = backend._base_and_host(ref.base_name)[1]
    assert not any(p.requires_grad for p in host.parameters(ref.slot).values())


def test_spills_under_a_root_go_to_this_process_and_clear_dead_engines_leftovers(tmp_path):
    import os
    import subprocess
    import sys

    root = tmp_path / "evicted-samplers"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()  # a pid that has exited
    (root / dead).mkdir(parents=True)
    (root / dead / "0.safetensors").write_bytes(b"left by a killed engine")
    (root / str(os.getppid())).mkdir()  # a live process's directory stays
    store = SpillStore(root=root)
    store.put("k", "base", LoraConfig(r=4), weights(0))
    assert store._entries["k"].path.parent == root / str(os.getpid())
    assert not (root / dead).exists() and (root / str(os.getppid())).exists()
