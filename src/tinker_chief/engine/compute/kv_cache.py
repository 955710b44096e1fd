"""A KV cache that writes each decode step into preallocated room instead of re-concatenating.

Transformers' `DynamicLayer.update` is `torch.cat([keys, new], dim=-2)` per layer per step: a
fresh allocation and a copy of the whole cache, 60 times per decode step of a 30-layer model.
`GrowingLayer` keeps each layer's keys/values in a buffer with spare room along the sequence
axis (doubling when full, so growth is amortised O(1)), writes the new positions in place, and
hands attention a view of the filled part. It subclasses `DynamicLayer` for masks and sequence
lengths, and reimplements the batch operations the sampler uses (`batch_repeat_interleave`
after a shared prefix, `batch_select_indices` when rows finish) on its buffers; results are
bit-identical. Operations the sampler never uses (crop, beam reordering, offloading) would act
on the views only, so they raise instead of silently desynchronising the buffers.

Under autocast the buffers hold the autocast dtype: attention (SDPA, or matmuls in eager
attention) casts keys and values to it anyway, so storing them cast once gives the same bits
and saves re-casting the whole cache in every layer on every step (keys come out of the
rotary embedding in fp32 even when the projections ran in bf16).

A cache told its `max_length` (the sampler knows it: the widest prompt plus the largest
`max_tokens` of its rows) never grows its room past it, so a decode loop of `rows` sequences
holds at most `rows x max_length x kv_bytes_per_token(...)` bytes of buffers: the number the
sampler pool packs its loops by (`sampler_pool.py`) and the server refuses requests by.
"""

from __future__ import annotations

import functools

import torch
from transformers import DynamicCache, PretrainedConfig
from transformers.cache_utils import Cache, DynamicLayer

from tinker_chief.models import text_config

MIN_ROOM = 32  # spare positions reserved on first use: a short generation never regrows


class GrowingLayer(DynamicLayer):
    """One layer's keys and values in preallocated buffers; `keys`/`values` are views of them."""

    _key_buffer: torch.Tensor
    _value_buffer: torch.Tensor

    def __init__(self, max_length: int | None = None) -> None:
        super().__init__()
        self.max_length = max_length  # room never grows past it

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        super().lazy_initialization(key_states, value_states)
        # Empty buffers (room 0): the first update allocates real ones.
        self._key_buffer = key_states.new_empty((*key_states.shape[:-2], 0, key_states.shape[-1]))
        self._value_buffer = value_states.new_empty(
            (*value_states.shape[:-2], 0, value_states.shape[-1])
        )
        self._length = 0

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        end = self._length + key_states.shape[-2]
        if end > self._key_buffer.shape[-2]:
            room = max(end, MIN_ROOM) * 2
            if self.max_length is not None:
                room = max(end, min(room, self.max_length))
            self._reallocate(key_states, value_states, room=room)
        self._key_buffer[..., self._length : end, :] = key_states
        self._value_buffer[..., self._length : end, :] = value_states
        self._set_length(end)
        return self.keys, self.values

    def _reallocate(self, key_states: torch.Tensor, value_states: torch.Tensor, room: int) -> None:
        dtype = self.dtype = _storage_dtype(key_states)
        keys = key_states.new_empty(
            (*key_states.shape[:-2], room, key_states.shape[-1]), dtype=dtype
        )
        values = value_states.new_empty(
            (*value_states.shape[:-2], room, value_states.shape[-1]), dtype=dtype
        )
        if self._length:
            keys[..., : self._length, :] = self._key_buffer[..., : self._length, :]
            values[..., : self._length, :] = self._value_buffer[..., : self._length, :]
        self._key_buffer, self._value_buffer = keys, values

    def _set_length(self, length: int) -> None:
        self._length = length
        self.keys = self._key_buffer[..., :length, :]
        self.values = self._value_buffer[..., :length, :]

    def _replace_buffers(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        self._key_buffer, self._value_buffer = keys, values
        self._set_length(self._length)

    def batch_repeat_interleave(self, repeats: int) -> None:
        if self.get_seq_length() > 0:
            self._replace_buffers(
                self._key_buffer.repeat_interleave(repeats, dim=0),
                self._value_buffer.repeat_interleave(repeats, dim=0),
            )

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self.get_seq_length() > 0:
            self._replace_buffers(self._key_buffer[indices, ...], self._value_buffer[indices, ...])

    def _unsupported(self, *args, **kwargs) -> None:
        raise NotImplementedError(
            "GrowingLayer serves chief's sampler only: no crop, beam reordering or offloading"
        )

    crop = reorder_cache = offload = prefetch = _unsupported

    @property
    def nbytes(self) -> int:
        """Bytes its buffers hold, spare room included."""
        if not self.is_initialized:
            return 0
        return self._key_buffer.nbytes + self._value_buffer.nbytes


def _storage_dtype(states: torch.Tensor) -> torch.dtype:
    device_type = states.device.type
    if states.is_floating_point() and torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return states.dtype


class GrowingKVCache(DynamicCache):
    """A `DynamicCache` whose layers are `GrowingLayer`s, created as the model first writes them;
    with `max_length`, no layer makes room for more positions than that."""

    def __init__(self, max_length: int | None = None) -> None:
        # Cache calls this with no arguments for each new layer.
        new_layer = functools.partial(GrowingLayer, max_length)
        Cache.__init__(self, layer_class_to_replicate=new_layer)  # type: ignore[arg-type]

    @property
    def nbytes(self) -> int:
        """Bytes every layer's buffers hold now."""
        return sum(layer.nbytes for layer in self.layers if isinstance(layer, GrowingLayer))


def kv_bytes_per_token(config: PretrainedConfig, dtype: torch.dtype) -> int:
    """Bytes one position of one sequence takes in the KV cache: a key and a value of every
    KV head in every layer (an upper bound for models whose layers keep fewer positions)."""
    language = text_config(config)
    heads = int(language.num_attention_heads)
    kv_heads = int(getattr(language, "num_key_value_heads", None) or heads)
    head_dim = int(getattr(language, "head_dim", None) or language.hidden_size // heads)
    return int(language.num_hidden_layers) * kv_heads * head_dim * 2 * dtype.itemsize
