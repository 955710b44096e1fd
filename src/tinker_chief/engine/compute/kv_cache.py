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
"""

from __future__ import annotations

import torch
from transformers import DynamicCache
from transformers.cache_utils import Cache, DynamicLayer

MIN_ROOM = 32  # spare positions reserved on first use: a short generation never regrows


class GrowingLayer(DynamicLayer):
    """One layer's keys and values in preallocated buffers; `keys`/`values` are views of them."""

    _key_buffer: torch.Tensor
    _value_buffer: torch.Tensor

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        super().lazy_initialization(key_states, value_states)
        # Empty buffers (room 0): the first update allocates real ones.
        self._key_buffer = key_states.new_empty((*key_states.shape[:-2], 0, key_states.shape[-1]))
        self._value_buffer = value_states.new_empty((*value_states.shape[:-2], 0, value_states.shape[-1]))
        self._length = 0

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        end = self._length + key_states.shape[-2]
        if end > self._key_buffer.shape[-2]:
            self._reallocate(key_states, value_states, room=max(end, MIN_ROOM) * 2)
        self._key_buffer[..., self._length : end, :] = key_states
        self._value_buffer[..., self._length : end, :] = value_states
        self._set_length(end)
        return self.keys, self.values

    def _reallocate(self, key_states: torch.Tensor, value_states: torch.Tensor, room: int) -> None:
        dtype = self.dtype = _storage_dtype(key_states)
        keys = key_states.new_empty((*key_states.shape[:-2], room, key_states.shape[-1]), dtype=dtype)
        values = value_states.new_empty((*value_states.shape[:-2], room, value_states.shape[-1]), dtype=dtype)
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
                self._key_buffer.repeat_interleave(repeats, dim=0), self._value_buffer.repeat_interleave(repeats, dim=0)
            )

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self.get_seq_length() > 0:
            self._replace_buffers(self._key_buffer[indices, ...], self._value_buffer[indices, ...])

    def _unsupported(self, *args, **kwargs) -> None:
        raise NotImplementedError("GrowingLayer serves chief's sampler only: no crop, beam reordering or offloading")

    crop = reorder_cache = offload = prefetch = _unsupported


def _storage_dtype(states: torch.Tensor) -> torch.dtype:
    device_type = states.device.type
    if states.is_floating_point() and torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return states.dtype


class GrowingKVCache(DynamicCache):
    """A `DynamicCache` whose layers are `GrowingLayer`s, created as the model first writes them."""

    def __init__(self) -> None:
        Cache.__init__(self, layer_class_to_replicate=GrowingLayer)
