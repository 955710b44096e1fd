"""LoRA counts and learning rates, cross-checked against the installed tinker-cookbook.

Three independent checks: (1) for every model in the cookbook's table, chief's counts equal
`get_lora_param_count` at several ranks and placements, and its LR equals `get_lr`; (2) chief's
config formula reproduces that table from the models' public configs (architecture fields
transcribed below from their Hugging Face `config.json`; the cookbook cannot fetch them offline
either); (3) on the tiny model, the formula equals the trainable parameters PEFT creates.
"""

from __future__ import annotations

import pytest
from tinker_cookbook import hyperparam_utils

from tinker_chief.errors import ConfigurationError
from tinker_chief.planning.capacity import (
    COOKBOOK_SOURCE,
    RANKS,
    lora_shape,
    lora_shape_from_config,
)
from tinker_chief.planning.hyperparams import recommend_lr, recommend_rank

COOKBOOK_MODELS = sorted(hyperparam_utils._LORA_PARAMS_PER_RANK_BY_COMPONENT)
PLACEMENTS = [
    (True, True, True),
    (True, True, False),
    (True, False, False),
    (False, True, False),
    (False, False, True),
    (False, True, True),
]


def _dense(hidden, layers, heads, kv, inter, vocab, head_dim=None, **extra):
    cfg = {
        "model_type": "llama",
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv,
        "intermediate_size": inter,
        "vocab_size": vocab,
        **extra,
    }
    if head_dim:
        cfg["head_dim"] = head_dim
    return cfg


QWEN3_30B = _dense(
    2048,
    48,
    32,
    4,
    6144,
    151936,
    128,
    model_type="qwen3_moe",
    moe_intermediate_size=768,
    num_experts=128,
    decoder_sparse_step=1,
    mlp_only_layers=[],
)
QWEN3_235B = _dense(
    4096,
    94,
    64,
    4,
    12288,
    151936,
    128,
    model_type="qwen3_moe",
    moe_intermediate_size=1536,
    num_experts=128,
    decoder_sparse_step=1,
    mlp_only_layers=[],
)
DEEPSEEK_V3 = dict(
    model_type="deepseek_v3",
    hidden_size=7168,
    num_hidden_layers=61,
    num_attention_heads=128,
    num_key_value_heads=128,
    q_lora_rank=1536,
    kv_lora_rank=512,
    qk_rope_head_dim=64,
    qk_nope_head_dim=128,
    v_head_dim=128,
    intermediate_size=18432,
    moe_intermediate_size=2048,
    n_routed_experts=256,
    n_shared_experts=1,
    first_k_dense_replace=3,
    vocab_size=129280,
)
KIMI_K2 = {
    **DEEPSEEK_V3,
    "num_attention_heads": 64,
    "num_key_value_heads": 64,
    "n_routed_experts": 384,
    "first_k_dense_replace": 1,
    "vocab_size": 163840,
}
GPT_OSS_20B = _dense(
    2880,
    24,
    64,
    8,
    2880,
    201088,
    64,
    model_type="gpt_oss",
    num_local_experts=32,
    layer_types=["sliding_attention", "full_attention"] * 12,
)
GPT_OSS_120B = {
    **GPT_OSS_20B,
    "num_hidden_layers": 36,
    "num_local_experts": 128,
    "layer_types": ["sliding_attention", "full_attention"] * 18,
}
PUBLIC_CONFIGS = {
    "Qwen/Qwen3-8B": _dense(4096, 36, 32, 8, 12288, 151936, 128, model_type="qwen3"),
    "Qwen/Qwen3-4B-Instruct-2507": _dense(2560, 36, 32, 8, 9728, 151936, 128, model_type="qwen3"),
    "Qwen/Qwen3-32B": _dense(5120, 64, 64, 8, 25600, 151936, 128, model_type="qwen3"),
    "Qwen/Qwen3-30B-A3B": QWEN3_30B,
    "Qwen/Qwen3-235B-A22B-Instruct-2507": QWEN3_235B,
    "Qwen/Qwen3-VL-30B-A3B-Instruct": {"model_type": "qwen3_vl_moe", "text_config": QWEN3_30B},
    "Qwen/Qwen3-VL-235B-A22B-Instruct": {"model_type": "qwen3_vl_moe", "text_config": QWEN3_235B},
    "meta-llama/Llama-3.2-1B": _dense(2048, 16, 32, 8, 8192, 128256, 64),
    "meta-llama/Llama-3.2-3B": _dense(3072, 28, 24, 8, 8192, 128256, 128),
    "meta-llama/Llama-3.1-8B": _dense(4096, 32, 32, 8, 14336, 128256),
    "meta-llama/Llama-3.1-70B": _dense(8192, 80, 64, 8, 28672, 128256),
    "deepseek-ai/DeepSeek-V3.1": DEEPSEEK_V3,
    "moonshotai/Kimi-K2-Thinking": KIMI_K2,
    "openai/gpt-oss-20b": GPT_OSS_20B,
    "openai/gpt-oss-120b": GPT_OSS_120B,
}
SAME_CONFIG_AS = {
    "Qwen/Qwen3-8B-Base": "Qwen/Qwen3-8B",
    "Qwen/Qwen3-30B-A3B-Base": "Qwen/Qwen3-30B-A3B",
    "Qwen/Qwen3-30B-A3B-Instruct-2507": "Qwen/Qwen3-30B-A3B",
    "meta-llama/Llama-3.1-8B-Instruct": "meta-llama/Llama-3.1-8B",
    "meta-llama/Llama-3.3-70B-Instruct": "meta-llama/Llama-3.1-70B",
    "deepseek-ai/DeepSeek-V3.1-Base": "deepseek-ai/DeepSeek-V3.1",
    "moonshotai/Kimi-K2.5": "moonshotai/Kimi-K2-Thinking",
    "moonshotai/Kimi-K2.6": "moonshotai/Kimi-K2-Thinking",
}
# Architectures chief's formula does not cover (linear-attention / Mamba hybrids) or whose configs
# are not public; for these chief uses the cookbook's table (check 1) and refuses to compute from a
# config.
NO_CONFIG_CHECK = {
    "Qwen/Qwen3.5-": "Gated DeltaNet hybrid (linear attention layers)",
    "Qwen/Qwen3.6-": "Qwen3.5 architecture (linear attention layers)",
    "Qwen/Qwen3.8-": "Qwen3.5 architecture (linear attention layers)",
    "nvidia/": "Nemotron Mamba-transformer hybrid",
    "zai-org/GLM-5.3": "architecture details not in a public config we could read offline",
    "deepseek-ai/DeepSeek-V4.1": (
        "architecture details not in a public config we could read offline"
    ),
    "thinkingmachines/Inkling": "config not public",
}


@pytest.mark.parametrize("model", COOKBOOK_MODELS)
def test_counts_equal_cookbook_for_every_model_in_its_table(model):
    shape = lora_shape(model)
    assert shape.source == COOKBOOK_SOURCE
    for rank in (1, 8, 32, 512):
        for mlp, attn, unembed in PLACEMENTS:
            expected = hyperparam_utils.get_lora_param_count(
                model, rank, train_mlp=mlp, train_attn=attn, train_unembed=unembed
            )
            assert shape.params(rank, mlp, attn, unembed) == expected


@pytest.mark.parametrize("model", COOKBOOK_MODELS)
def test_config_formula_reproduces_cookbook_table(model):
    config = PUBLIC_CONFIGS.get(SAME_CONFIG_AS.get(model, model))
    if config is None:
        reason = next(why for prefix, why in NO_CONFIG_CHECK.items() if model.startswith(prefix))
        pytest.skip(f"{model}: {reason}")
    computed, table = lora_shape_from_config(config), lora_shape(model)
    assert (computed.attn, computed.mlp, computed.unembed) == (table.attn, table.mlp, table.unembed)
    for rank in (1, 16, 256):
        assert computed.params(rank) == hyperparam_utils.get_lora_param_count(model, rank)


def test_hybrid_architectures_are_refused():
    with pytest.raises(ConfigurationError, match="not supported by chief's LoRA-count formula"):
        lora_shape_from_config(
            {**PUBLIC_CONFIGS["Qwen/Qwen3-8B"], "layer_types": ["linear_attention"] * 36}
        )


@pytest.mark.parametrize(
    ("field", "value"),
    [("head_dim", "64"), ("num_key_value_heads", 8.0), ("num_experts", [128])],
)
def test_a_config_field_that_is_not_an_integer_is_named(field, value):
    """A config.json value of the wrong type is one error naming the field, not a TypeError
    (or a string repeated `heads` times) from the arithmetic."""
    config = {**PUBLIC_CONFIGS["meta-llama/Llama-3.2-1B"], field: value}
    with pytest.raises(ConfigurationError) as error:
        lora_shape_from_config(config)
    assert str(error.value) == f"model config: field `{field}`: expected an integer, got {value!r}"


@pytest.mark.parametrize("model", COOKBOOK_MODELS)
def test_learning_rate_equals_get_lr(model):
    try:
        expected = hyperparam_utils.get_lr(model, is_lora=True)
    except Exception:  # NotImplementedError or the cookbook's "Unknown model"
        expected = None
    if expected is None:  # a stated fallback rule, never a crash
        fallback = recommend_lr(model, None)
        assert "fallback rule" in fallback.rule and fallback.source.endswith("(fallback)")
    else:
        assert recommend_lr(model, None).value == pytest.approx(expected, rel=1e-12)


def test_learning_rate_formula_for_models_the_cookbook_lacks():
    from tinker_chief.models import load_model_config

    smol = recommend_lr("SmolLM2-135M-Instruct-Q4_1", {"model_type": "llama", "hidden_size": 576})
    assert smol.value == pytest.approx(5e-4 * (2000 / 576) ** 0.781)
    assert "family llama" in smol.rule
    tiny = recommend_lr("tiny-random-llama", load_model_config("tiny-random-llama"))
    assert tiny.value == pytest.approx(5e-4 * (2000 / 64) ** 0.781)
    qwenish = recommend_lr("my-model", {"model_type": "qwen2", "hidden_size": 896})
    assert qwenish.value == pytest.approx(5e-4 * (2000 / 896) ** 0.0775)
    other = recommend_lr("my-model", {"model_type": "phi3", "hidden_size": 2000})
    assert other.value == pytest.approx(5e-4) and "assumed Llama-like" in other.rule


def test_smollm2_counts_match_measured_peft_adapter():
    # cpu-feasibility-smollm2.md measured 305,280 trainable LoRA params per rank on the 7
    # projections.
    shape = lora_shape_from_config(
        dict(
            model_type="llama",
            hidden_size=576,
            num_hidden_layers=30,
            num_attention_heads=9,
            num_key_value_heads=3,
            intermediate_size=1536,
            vocab_size=49152,
        )
    )
    assert shape.params(1, train_unembed=False) == 305_280


def test_tiny_model_counts_equal_peft_trainable_parameters():
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from tinker_chief.models import load_model_config, materialize_model

    shape = lora_shape("tiny-random-llama", load_config=load_model_config)
    model = AutoModelForCausalLM.from_pretrained(
        str(materialize_model("tiny-random-llama")), dtype=torch.float32
    )
    for rank, targets, flags in (
        (4, ["q_proj", "k_proj", "v_proj", "o_proj"], (False, True, False)),
        (8, ["gate_proj", "up_proj", "down_proj"], (True, False, False)),
    ):
        peft_model = get_peft_model(model, LoraConfig(r=rank, target_modules=targets))
        trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
        assert trainable == shape.params(rank, *flags)
        model = peft_model.unload()


def test_rank_rules():
    shape = lora_shape_from_config(PUBLIC_CONFIGS["meta-llama/Llama-3.2-1B"])
    placement = {"train_mlp": True, "train_attn": True, "train_unembed": True}
    per_rank = shape.per_rank()
    assert recommend_rank("sl", shape, 1000, placement)[0].value == 32
    needs = per_rank * 32 + 1  # just over rank 32's capacity -> 64
    rec, warnings = recommend_rank("sl", shape, needs, placement)
    assert rec.value == 64 and not warnings
    rec, warnings = recommend_rank("sl", shape, per_rank * 512 * 3, placement)
    assert (
        rec.value == 512 and "capacity-constrained" in warnings[0] and "fewer epochs" in warnings[0]
    )
    rec, _ = recommend_rank("rl", shape, 10**12, placement)
    assert rec.value == 8 and "1 bit" in rec.rule
    assert RANKS == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
