"""One-token decode steps of Llama-family models, without transformers' per-call glue.

A decode step feeds each row one token through every decoder layer. Transformers' forward does
that through layers of generic glue per call: the model's output-capturing and config-default
decorators, a causal mask built from the 2-D padding mask (`create_causal_mask`), per layer the
decoder layer's and the attention block's keyword plumbing, the attention-interface lookup and
`apply_rotary_pos_emb`'s `rotate_half` (two slices, a negation and a concatenation, for the
queries and again for the keys), and the output dataclasses. On a 2-core Xeon with AMX
(2026-12-08) a 32-row bf16 step of SmolLM2-135M took 42-44 ms this way against 46-47 ms
through `causal_lm(...)`; the rest of the step is the linear layers, attention and the norms,
which this path calls as they are.

`LeanDecodeStep(model)` runs such a step for models whose decoder layers it knows (Llama,
Qwen2, Qwen3 and Mistral without a sliding window, on the engine's grouped decode attention)
and gives the same bits as `causal_lm(input_ids=..., attention_mask=..., position_ids=...,
past_key_values=cache, logits_to_keep=1).logits`:
- the model's own modules do every computation that carries weights or numerics of its own:
  the embedding, the rotary embedding's cos/sin, the norms (Qwen3's per-head q/k norms too),
  every projection (so LoRA adapters injected by PEFT take part as usual), the MLP, the final
  norm and the output layer;
- the rotary embedding is `q * cos + roll(q, half) * sin'` with `sin'` the sine with its first
  half negated once per step, which is `q * cos + rotate_half(q) * sin` element for element
  (`-(a * b) == a * (-b)` exactly in IEEE arithmetic), with one `roll` where `rotate_half`
  takes two slices, a negation and a concatenation;
- the padding mask is built once per step as the `[rows, 1, 1, positions]` boolean mask
  transformers' SDPA mask is for a single query position (none when no row is padded, as there);
- attention is `grouped_decode_attention` itself (SDPA over the unrepeated KV cache), called
  as transformers' attention block calls it.

`lean_decode_step(model)` returns None for anything else (another architecture, a sliding
window, eager attention); the sampler then calls the model as before. Prefill (more than one
token per row) always goes through transformers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from tinker_chief.engine.compute.attention import GROUPED_DECODE, grouped_decode_attention

if TYPE_CHECKING:
    from transformers import Cache, PreTrainedModel

# Decoder layer -> its attention block, for the layers this step reproduces; the value says
# whether the block normalises its queries and keys per head (Qwen3's q_norm/k_norm).
_KNOWN_LAYERS = {
    "LlamaDecoderLayer": ("LlamaAttention", False),
    "MistralDecoderLayer": ("MistralAttention", False),
    "Qwen2DecoderLayer": ("Qwen2Attention", False),
    "Qwen3DecoderLayer": ("Qwen3Attention", True),
}
_KNOWN_MODELS = ("LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM")


def lean_decode_step(model: PreTrainedModel) -> LeanDecodeStep | None:
    """The lean one-token step for `model`, or None where it would not give transformers' bits."""
    if type(model).__name__ not in _KNOWN_MODELS:
        return None
    if model.config._attn_implementation != GROUPED_DECODE:
        return None
    layers = list(model.model.layers[: model.config.num_hidden_layers])
    for layer in layers:
        known = _KNOWN_LAYERS.get(type(layer).__name__)
        if known is None or type(layer.self_attn).__name__ != known[0]:
            return None
    return LeanDecodeStep(model, layers) if _full_attention_only(model, layers) else None


def _full_attention_only(model: PreTrainedModel, layers: list[Any]) -> bool:
    """No layer attends through a sliding window (its mask is not the plain padding mask)."""
    config = model.config
    if any(kind != "full_attention" for kind in getattr(config, "layer_types", None) or ()):
        return False
    if type(model).__name__ == "MistralForCausalLM" and config.sliding_window is not None:
        return False  # Mistral windows every layer through its mask, not its attention blocks
    return all(getattr(layer.self_attn, "sliding_window", None) is None for layer in layers)


class LeanDecodeStep:
    """`step(input_ids, attention_mask, position_ids, cache)` -> logits `[rows, 1, vocab]` for
    input_ids of one token per row (module docstring)."""

    # Layers and blocks are typed Any: their submodules (q_proj, q_norm, ...) and numbers
    # (head_dim, scaling) are attributes torch's Module type does not declare.
    def __init__(self, model: PreTrainedModel, layers: list[Any]) -> None:
        self.model = model
        self.stack = model.model
        self.layers = layers
        self.qk_norm = _KNOWN_LAYERS[type(layers[0]).__name__][1] if layers else False

    def __call__(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        cache: Cache,
    ) -> torch.Tensor:
        assert input_ids.shape[1] == 1, "a decode step takes one token per row"
        hidden = self.stack.embed_tokens(input_ids)
        cos, sin = self.stack.rotary_emb(hidden, position_ids)  # [rows, 1, head_dim]
        half = cos.shape[-1] // 2
        rotary = (
            cos[:, :, None, :],
            torch.cat([-sin[..., :half], sin[..., half:]], dim=-1)[:, :, None, :],
            half,
        )
        keep = None if bool(attention_mask.all()) else attention_mask.bool()[:, None, None, :]
        for index, layer in enumerate(self.layers):
            attended = self._attention(
                layer.self_attn, layer.input_layernorm(hidden), rotary, keep, cache, index
            )
            hidden = hidden + attended
            hidden = hidden + layer.mlp(layer.post_attention_layernorm(hidden))
        return self.model.lm_head(self.stack.norm(hidden))

    def _attention(
        self,
        block: Any,
        x: torch.Tensor,
        rotary: tuple[torch.Tensor, torch.Tensor, int],
        keep: torch.Tensor | None,
        cache: Cache,
        index: int,
    ) -> torch.Tensor:
        rows, head_dim = x.shape[0], block.head_dim
        shape = (rows, 1, -1, head_dim)  # [rows, position, heads, head_dim]
        queries = block.q_proj(x).view(shape)
        keys = block.k_proj(x).view(shape)
        values = block.v_proj(x).view(shape)
        if self.qk_norm:
            queries, keys = block.q_norm(queries), block.k_norm(keys)
        cos, signed_sin, half = rotary
        queries = queries * cos + queries.roll(half, dims=-1) * signed_sin
        keys = keys * cos + keys.roll(half, dims=-1) * signed_sin
        keys, values = cache.update(keys.transpose(1, 2), values.transpose(1, 2), index)
        out, _ = grouped_decode_attention(
            block, queries.transpose(1, 2), keys, values, keep, scaling=block.scaling
        )
        return block.o_proj(out.reshape(rows, 1, -1))
