"""Grouped-query attention for one-token decode steps without copying the KV cache.

Transformers' SDPA path repeats every key/value head `num_key_value_groups` times
(`repeat_kv`, a full copy of the layer's cache) whenever an attention mask is present, which a
left-padded decode batch always has; torch's `enable_gqa` is only used there without a mask. A
decode step has a single query position, so the query heads that share a key/value head can
instead be laid out as that head's query *positions*: `[B, kv_heads * groups, 1, D]` becomes
`[B, kv_heads, groups, D]`, and one SDPA call over the unrepeated cache gives the same result
(the padding mask `[B, 1, 1, L]` broadcasts over the group). Prefill and training steps (more
than one query position) go to transformers' own SDPA function unchanged.

`use_grouped_decode_attention(model)` registers this as the attention implementation
`GROUPED_DECODE` (with SDPA's mask builder) and switches the model to it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from transformers import PreTrainedModel

GROUPED_DECODE = "chief_grouped_decode_sdpa"


def grouped_decode_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **kwargs: object,
) -> tuple[torch.Tensor, None]:
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    groups = getattr(module, "num_key_value_groups", 1)
    if query.shape[2] != 1 or groups == 1 or dropout:
        return sdpa_attention_forward(
            module,
            query,
            key,
            value,
            attention_mask,
            dropout=dropout,
            scaling=scaling,
            is_causal=is_causal,
            **kwargs,
        )
    batch, heads, _, head_dim = query.shape
    grouped = query.reshape(batch, heads // groups, groups, head_dim)
    out = torch.nn.functional.scaled_dot_product_attention(
        grouped,
        key,
        value,
        attn_mask=attention_mask,
        scale=scaling,
    )
    # [B, q_len=1, heads, D], as SDPA's path returns.
    return out.reshape(batch, 1, heads, head_dim), None


def use_grouped_decode_attention(model: PreTrainedModel) -> None:
    """Switch an SDPA model to `grouped_decode_attention` (other implementations are left alone)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    if model.config._attn_implementation != "sdpa":
        return
    AttentionInterface.register(GROUPED_DECODE, grouped_decode_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(GROUPED_DECODE, sdpa_mask)
    model.set_attn_implementation(GROUPED_DECODE)
