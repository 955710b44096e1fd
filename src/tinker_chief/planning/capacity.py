"""LoRA capacity: adapter parameter counts per rank, split by where the adapters sit.

Tinker (and the cookbook's `get_lora_param_count`) count, per unit of rank, `in + out` for every
adapted 2-D linear layer: attention projections, MLP projections and the unembedding. MoE
experts use a "shared outer" factor: the hidden-side dimension is counted once per projection
and layer, the expert-side dimension once per expert. DeepSeek-style MLA adapts `q_a_proj`,
`kv_a_proj_with_mqa` and `o_proj` but not `q_b_proj`/`kv_b_proj`; routers and embeddings are
never adapted.

For models the installed cookbook has in its table we take the counts from the cookbook's
public `get_lora_param_count` (it needs no network, while their configs would); for anything
else we compute them from the model's `config.json` with the formula above, which reproduces
the cookbook's table exactly for every architecture it supports (tests/planning check it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from tinker_chief.errors import ConfigurationError

RANKS = [2**k for k in range(10)]  # 1 .. 512
COOKBOOK_SOURCE = "tinker_cookbook.hyperparam_utils.get_lora_param_count (cookbook 0.5.8 table)"
# A Hugging Face `config.json` as parsed: its values are whatever the JSON holds.
ModelConfig = Mapping[str, object]
CONFIG_SOURCE = "computed from the model's config.json (Tinker's LoRA placement, shared-outer MoE)"


@dataclass(frozen=True)
class LoraShape:
    """LoRA parameters per unit of rank, by component."""

    attn: int
    mlp: int  # includes MoE experts
    unembed: int
    # The part of `mlp` in MoE experts (None: not known, e.g. from the cookbook table).
    experts: int | None
    source: str

    def per_rank(
        self, train_mlp: bool = True, train_attn: bool = True, train_unembed: bool = True
    ) -> int:
        return (
            (self.mlp if train_mlp else 0)
            + (self.attn if train_attn else 0)
            + (self.unembed if train_unembed else 0)
        )

    def params(
        self, rank: int, train_mlp: bool = True, train_attn: bool = True, train_unembed: bool = True
    ) -> int:
        return rank * self.per_rank(train_mlp, train_attn, train_unembed)


def cookbook_shape(model_name: str) -> LoraShape | None:
    """The cookbook's per-component counts, or None when its table lacks the model."""
    from tinker_chief.models.lineup import cookbook_lora_per_rank

    counts = cookbook_lora_per_rank(model_name)
    if counts is None:
        return None
    return LoraShape(
        attn=counts["attn"],
        mlp=counts["mlp"],
        unembed=counts["unembed"],
        experts=None,
        source=COOKBOOK_SOURCE,
    )


def text_part(config: ModelConfig) -> ModelConfig:
    """The language model's part of a config (a multimodal config nests it as `text_config`)."""
    text = config.get("text_config")
    return text if isinstance(text, Mapping) and text else config


def _optional_int(config: ModelConfig, *names: str) -> int | None:
    """The first of `names` the config sets (not null), which must be an integer; else None."""
    for name in names:
        value = config.get(name)
        if value is None:
            continue
        if not isinstance(value, int):
            raise ConfigurationError(
                f"model config: field `{name}`: expected an integer, got {value!r}"
            )
        return value
    return None


def _int(config: ModelConfig, *names: str, default: int) -> int:
    value = _optional_int(config, *names)
    return default if value is None else value


def _require(config: ModelConfig, name: str) -> int:
    value = _optional_int(config, name)
    if value is None:
        raise ConfigurationError(f"model config: field `{name}`: expected an integer, got None")
    return value


def _attention_per_layer(config: ModelConfig, hidden: int) -> int:
    heads = _require(config, "num_attention_heads")
    if config.get("kv_lora_rank"):  # multi-head latent attention (DeepSeek-V3, Kimi-K2)
        rope, nope = _require(config, "qk_rope_head_dim"), _require(config, "qk_nope_head_dim")
        q_rank = _optional_int(config, "q_lora_rank")
        q = hidden + q_rank if q_rank else hidden + heads * (nope + rope)
        kv = hidden + _require(config, "kv_lora_rank") + rope
        return q + kv + heads * _require(config, "v_head_dim") + hidden
    kv_heads = _int(config, "num_key_value_heads", default=heads)
    head_dim = _int(config, "head_dim", default=hidden // heads)
    q_dim, kv_dim = heads * head_dim, kv_heads * head_dim
    return (hidden + q_dim) + 2 * (hidden + kv_dim) + (q_dim + hidden)


def _moe_layers(config: ModelConfig, layers: int) -> set[int]:
    """Indices of the layers whose MLP is a mixture of experts."""
    first_sparse = _optional_int(config, "first_k_dense_replace")
    if first_sparse is not None:
        return set(range(first_sparse, layers))
    dense = config.get("mlp_only_layers")
    dense_only = set(dense) if isinstance(dense, list) else set()
    step = _optional_int(config, "decoder_sparse_step") or 1
    return {i for i in range(layers) if i not in dense_only and (i + 1) % step == 0}


def _check_supported(config: ModelConfig) -> None:
    layer_types = config.get("layer_types")
    kinds = set(layer_types) if isinstance(layer_types, list) else set()
    unsupported = kinds - {"full_attention", "sliding_attention"}
    if unsupported or config.get("hybrid_override_pattern"):
        raise ConfigurationError(
            f"model config ({config.get('model_type')}): layers of kind "
            f"{sorted(unsupported) or 'mamba/hybrid'} are not supported by chief's LoRA-count "
            "formula; only attention + MLP/MoE transformers are"
        )


def lora_shape_from_config(config: ModelConfig) -> LoraShape:
    """LoRA parameters per rank from a Hugging Face `config.json` dict."""
    config = text_part(config)
    _check_supported(config)
    hidden, layers = _require(config, "hidden_size"), _require(config, "num_hidden_layers")
    vocab = _require(config, "vocab_size")
    attn = _attention_per_layer(config, hidden) * layers
    count_fields = ("num_experts", "num_local_experts", "n_routed_experts")
    experts_count = _int(config, *count_fields, default=0)
    inter = _require(config, "intermediate_size")
    dense_mlp = 3 * (hidden + inter)
    if not experts_count:
        mlp = dense_mlp * layers
        return LoraShape(attn, mlp, vocab + hidden, experts=0, source=CONFIG_SOURCE)
    expert_inter = _int(config, "moe_intermediate_size", default=inter)
    shared_inter = (_optional_int(config, "n_shared_experts") or 0) * expert_inter + (
        _optional_int(config, "shared_expert_intermediate_size") or 0
    )
    # Shared outer factor: the hidden side is counted once per projection, not per expert.
    expert_part = experts_count * expert_inter * 3 + 3 * hidden
    shared_part = 3 * (hidden + shared_inter) if shared_inter else 0
    moe = _moe_layers(config, layers)
    mlp = len(moe) * (expert_part + shared_part) + (layers - len(moe)) * dense_mlp
    experts = len(moe) * expert_part
    return LoraShape(attn, mlp, vocab + hidden, experts=experts, source=CONFIG_SOURCE)


def lora_shape(
    model_name: str, load_config: Callable[[str], ModelConfig] | None = None
) -> LoraShape:
    """Counts for a model: the cookbook's table when it has the model, else from its config."""
    shape = cookbook_shape(model_name)
    if shape is not None:
        return shape
    if load_config is None:
        from tinker_chief.models import load_model_config

        load_config = load_model_config
    return lora_shape_from_config(load_config(model_name))


@dataclass(frozen=True)
class CapacityRow:
    rank: int
    attn: int
    mlp: int
    experts: int | None
    unembed: int
    total: int  # with the project's placement flags
    capacity_ratio: float | None  # total / completion tokens


def capacity_table(
    shape: LoraShape,
    completion_tokens: int,
    *,
    train_mlp: bool = True,
    train_attn: bool = True,
    train_unembed: bool = True,
) -> list[CapacityRow]:
    rows = []
    for rank in RANKS:
        total = shape.params(rank, train_mlp, train_attn, train_unembed)
        rows.append(
            CapacityRow(
                rank=rank,
                attn=rank * shape.attn,
                mlp=rank * shape.mlp,
                experts=None if shape.experts is None else rank * shape.experts,
                unembed=rank * shape.unembed,
                total=total,
                capacity_ratio=(total / completion_tokens) if completion_tokens else None,
            )
        )
    return rows
