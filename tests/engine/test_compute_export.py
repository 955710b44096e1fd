"""Saved adapters are standard PEFT; merged exports load with plain transformers and match.

Also pins the generic LoRA target detection on a fused-expert MoE model (tiny random Mixtral).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tinker_chief.engine.backend import AdamStep, InvalidRequestError, LoraSettings
from tinker_chief.engine.compute import TorchBackend, export_adapter, export_merged
from tinker_chief.engine.compute.adapters import lora_config_for, scan_layout
from tinker_chief.engine.compute.base_pool import load_frozen_causal_lm
from tinker_chief.models import materialize_model

from compute_support import TINY_MODEL, fresh_id, sft_batch


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """An adapter (with unembedding LoRA) trained a few steps, saved, plus its scores on a batch."""
    backend = TorchBackend(device="cpu", dtype="float32")
    model_id = fresh_id("export")
    backend.create_training_model(
        model_id, TINY_MODEL, LoraSettings(rank=4, seed=2, train_unembed=True)
    )
    for seed in range(3):
        backend.forward_backward(model_id, sft_batch(seed), "cross_entropy", {}, False)
        backend.optim_step(model_id, AdamStep(learning_rate=0.05))
    directory = tmp_path_factory.mktemp("adapter") / "sampler"
    backend.save_sampler_weights(model_id, directory)
    probe = sft_batch(99, lengths=(9,))
    scores = backend.forward_backward(model_id, probe, "cross_entropy", {}, True).outputs[0][
        "logprobs"
    ]
    return directory, probe[0], scores


def logprobs_of(model, datum) -> np.ndarray:
    with torch.no_grad():
        logits = model(input_ids=torch.as_tensor(datum.tokens)[None]).logits.float()
    targets = torch.as_tensor(datum.loss_fn_inputs["target_tokens"])[None, :, None]
    return torch.log_softmax(logits, -1).gather(-1, targets)[0, :, 0].numpy()


def test_saved_adapter_loads_with_peft(saved):
    from peft import PeftModel

    directory, datum, scores = saved
    base = load_frozen_causal_lm(materialize_model(TINY_MODEL), "cpu")
    model = PeftModel.from_pretrained(base, str(directory))
    np.testing.assert_allclose(logprobs_of(model, datum), scores, atol=1e-5)


def test_merged_export_loads_with_transformers_and_matches(saved, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    directory, datum, scores = saved
    export_merged(directory, TINY_MODEL, tmp_path / "merged")
    merged = AutoModelForCausalLM.from_pretrained(str(tmp_path / "merged"), dtype=torch.float32)
    np.testing.assert_allclose(logprobs_of(merged, datum), scores, atol=1e-4)
    # the unembedding LoRA was merged into an untied copy: the input embeddings are the base's
    base = load_frozen_causal_lm(materialize_model(TINY_MODEL), "cpu")
    assert torch.equal(merged.get_input_embeddings().weight, base.get_input_embeddings().weight)
    assert not torch.equal(
        merged.get_output_embeddings().weight, base.get_output_embeddings().weight
    )
    assert AutoTokenizer.from_pretrained(str(tmp_path / "merged")).eos_token == "<|im_end|>"


def test_export_adapter_copies_weights_only(saved, tmp_path):
    directory, _, _ = saved
    export_adapter(directory, tmp_path / "adapter")
    names = sorted(p.name for p in (tmp_path / "adapter").iterdir())
    assert names == ["adapter_config.json", "adapter_model.safetensors", "chief_adapter.json"]
    with pytest.raises(InvalidRequestError, match="exists and is not empty"):
        export_adapter(directory, tmp_path / "adapter")


def test_moe_experts_are_found_generically():
    from transformers import MixtralConfig, MixtralForCausalLM

    config = MixtralConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=2,
        num_local_experts=4,
    )
    layout = scan_layout(MixtralForCausalLM(config))
    lora = lora_config_for(
        layout, LoraSettings(rank=2, train_unembed=False), materialize_model(TINY_MODEL)
    )
    assert set(lora.target_modules) == {"q_proj", "k_proj", "v_proj", "o_proj"}
    assert set(lora.target_parameters) == {
        "experts.gate_up_proj",
        "experts.down_proj",
    }  # router excluded
    attn_only = lora_config_for(
        layout, LoraSettings(rank=2, train_mlp=False), materialize_model(TINY_MODEL)
    )
    assert not attn_only.target_parameters and "lm_head" in attn_only.target_modules
