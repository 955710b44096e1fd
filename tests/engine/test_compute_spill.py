"""SpillStore: evicted snapshot adapters on disk, within a byte budget."""

from __future__ import annotations

import pytest
import torch
from peft import LoraConfig

from tinker_chief.engine.compute.spill import SpillStore


def weights(seed: int) -> dict[str, torch.Tensor]:
    return {"lora_A.weight": torch.randn(4, 64, generator=torch.Generator().manual_seed(seed))}


def test_take_gives_back_what_was_put_and_removes_the_file():
    store = SpillStore()
    config = LoraConfig(r=4)
    store.put("base@s1", "base", config, weights(1))
    store.put("other@s1", "other", config, weights(2))  # same slot name on another base
    base_name, got_config, got = store.take("base@s1")
    assert (base_name, got_config.r) == ("base", 4)
    assert torch.equal(got["lora_A.weight"], weights(1)["lora_A.weight"])
    assert "base@s1" not in store and "other@s1" in store
    assert torch.equal(store.take("other@s1")[2]["lora_A.weight"], weights(2)["lora_A.weight"])
    assert not any(store._directory().iterdir())


def test_oldest_spills_are_dropped_past_the_byte_budget():
    store = SpillStore(max_bytes=2500)  # room for two ~1 KB spills
    for i in range(4):
        store.put(f"k{i}", "base", LoraConfig(r=4), weights(i))
    assert [key in store for key in ("k0", "k1", "k2", "k3")] == [False, False, True, True]
    assert store.was_dropped("k0") and store.was_dropped("k1") and not store.was_dropped("k3")
    assert len(list(store._directory().iterdir())) == 2
    with pytest.raises(KeyError):
        store.take("k0")
