"""Batched generation with a KV cache, per-row sampling settings, stops and logprobs.

`generate(causal_lm, rows, ...)` takes rows that share one set of weights (the backend groups
requests by sampler key first), prefills the prompt prefix they all share once (a system
prompt, few-shot examples, the n copies of a `num_samples=n` request; or takes its KV states
from the sampler's `PrefixStore`, where an earlier loop on the same frozen weights left them),
left-pads the rest of their prompts, runs one prefill and one decode loop for all of them (a
row that finishes leaves the batch, so the rows still generating do not pay for it; one-token
steps go through `decode_step.py` where it knows the model), and gives each row its own
temperature / top-p / top-k, its own `torch.Generator` (so a seed reproduces the output whatever
else is in the batch), its own stop tokens, stop strings and `max_tokens`. The logprob reported
for a chosen token is the model's raw log-softmax (temperature 1), as Tinker reports it, so it
agrees with `forward`.
We write the loop instead of calling `model.generate` because HF's generate applies one
`GenerationConfig` to the whole batch and returns processed (not raw) scores.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

import torch

from tinker_chief.engine.backend import SampledSequence, SamplingSettings
from tinker_chief.engine.compute.decode_step import lean_decode_step
from tinker_chief.engine.compute.devices import Precision
from tinker_chief.engine.compute.kv_cache import GrowingKVCache

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

MIN_SHARED_PREFIX = 8

# One sequence's keys and values, layer by layer ([1, kv_heads, positions, head_dim] each).
PrefixStates = list[tuple[torch.Tensor, torch.Tensor]]


class PrefixStore(Protocol):
    """Where the sampler keeps shared prefixes' KV states between decode loops, for one set of
    weights (a frozen base or snapshot: states of weights that change must never come back)."""

    def get(self, prefix: tuple[int, ...]) -> PrefixStates | None: ...

    def put(self, prefix: tuple[int, ...], states: PrefixStates) -> None: ...


@dataclass
class Row:
    """One sequence to generate (a request with num_samples=n becomes n rows)."""

    prompt: list[int]
    settings: SamplingSettings
    generator: torch.Generator | None
    tokens: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    stop_reason: Literal["stop", "length"] | None = None

    def result(self) -> SampledSequence:
        return SampledSequence(
            tokens=self.tokens, logprobs=self.logprobs, stop_reason=self.stop_reason or "length"
        )


def _left_pad(
    rows: list[Row], skip: int, pad_id: int, device: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompts after their first `skip` tokens, left-padded to one width, and their mask."""
    width = max(len(row.prompt) for row in rows) - skip
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for index, row in enumerate(rows):
        tail = row.prompt[skip:]
        ids[index, width - len(tail) :] = torch.tensor(tail, dtype=torch.long)
        mask[index, width - len(tail) :] = 1
    return ids.to(device), mask.to(device)


def shared_prefix_length(rows: list[Row]) -> int:
    """Tokens every prompt starts with, leaving each row at least one token of its own.

    The last prompt token must be prefilled per row (its logits pick the row's first token).
    Below `MIN_SHARED_PREFIX` the extra batch-1 forward is not worth its overhead.
    """
    if len(rows) < 2:
        return 0
    common = len(os.path.commonprefix([row.prompt for row in rows]))  # works on any sequences
    length = min(common, min(len(row.prompt) for row in rows) - 1)
    return length if length >= MIN_SHARED_PREFIX else 0


def _filter(logits: torch.Tensor, settings: SamplingSettings) -> torch.Tensor:
    """Temperature, top-k and top-p applied to one row's fp32 logits."""
    scaled = logits / settings.temperature
    if 0 < settings.top_k < scaled.shape[-1]:
        threshold = torch.topk(scaled, settings.top_k).values[-1]
        scaled = scaled.masked_fill(scaled < threshold, float("-inf"))
    if settings.top_p < 1.0:
        ordered, order = torch.sort(scaled, descending=True)
        cumulative = torch.softmax(ordered, dim=-1).cumsum(-1)
        # Keep the token crossing p.
        drop = cumulative - torch.softmax(ordered, dim=-1) >= settings.top_p
        drop[..., 0] = False  # and the likeliest: a top_p that is 0 in fp32 dropped them all
        scaled = scaled.scatter(-1, order, ordered.masked_fill(drop, float("-inf")))
    return scaled


def _sample(logits: torch.Tensor, row: Row) -> int:
    probs = torch.softmax(_filter(logits, row.settings), dim=-1)
    return int(torch.multinomial(probs.cpu(), 1, generator=row.generator))


def _stopped(row: Row, token: int, tokenizer: PreTrainedTokenizerBase | None) -> bool:
    if token in row.settings.stop_tokens:
        return True
    if row.settings.stop_strings:
        assert tokenizer is not None  # the sampler loads one whenever a request has stop strings
        text = tokenizer.decode(row.tokens, skip_special_tokens=False)
        return any(stop in text for stop in row.settings.stop_strings)
    return False


def _logsumexp(scores: torch.Tensor, maxima: torch.Tensor, own: bool) -> torch.Tensor:
    """`torch.logsumexp(scores, -1)`, the same bits (its own steps: shift by the row maxima,
    finite ones only, exp, sum, log, shift back), reusing the maxima the step already has and,
    where `scores` is a copy of our `own`, overwriting it instead of writing rows x vocab new
    floats: 1.0 against 1.3 ms for 32 x 49,152 bf16 logits (2-core Xeon with AMX, 2026-12-08)."""
    shift = maxima.masked_fill(maxima.abs() == float("inf"), 0)
    shifted = scores.sub_(shift[:, None]) if own else scores - shift[:, None]
    return shifted.exp_().sum(-1).log_().add_(shift)


def step_rows(
    rows: list[Row], logits: torch.Tensor, tokenizer: PreTrainedTokenizerBase | None
) -> None:
    """Append one token (and its raw logprob) to every row; mark the rows that finish."""
    scores = logits.float()
    # One batched reduction for all rows. `max`'s indices are argmax's (the first maximum) at
    # ~1/3 of its time on CPU (0.43 against 1.19 ms for 32 x 49,152 logits, 2 threads).
    maxima = torch.max(scores, dim=-1)
    greedy = maxima.indices.tolist()
    chosen = [
        greedy[index] if row.settings.temperature <= 0 else _sample(scores[index], row)
        for index, row in enumerate(rows)
    ]
    # The raw log-softmax of the chosen tokens only: a full-vocabulary log_softmax writes
    # rows x vocab floats per step to read one of each (6 ms of a 70 ms bf16 decode step).
    picked = scores.gather(-1, torch.tensor(chosen, device=scores.device)[:, None]).squeeze(-1)
    logprobs = (picked - _logsumexp(scores, maxima.values, own=scores is not logits)).tolist()
    for row, token, logprob in zip(rows, chosen, logprobs):
        row.tokens.append(token)
        row.logprobs.append(logprob)
        if _stopped(row, token, tokenizer):
            row.stop_reason = "stop"
        elif len(row.tokens) >= row.settings.max_tokens:
            row.stop_reason = "length"


def cache_length(rows: list[Row]) -> int:
    """Positions the KV cache of a decode loop over `rows` may reach: the prompts are left-padded
    to the widest, then every row decodes up to the largest `max_tokens`."""
    return max(len(row.prompt) for row in rows) + max(row.settings.max_tokens for row in rows)


# Inference mode, not just no_grad: a decode step is ~1,500 small ops, and skipping their
# version counters and view tracking made 4- and 32-row bf16 steps 5-9% faster (2-core Xeon with
# AMX, 2026-12-08); the loop's tensors (KV cache, logits) never meet autograd.
@torch.inference_mode()
def generate(
    causal_lm: PreTrainedModel,
    rows: list[Row],
    precision: Precision,
    pad_id: int,
    tokenizer: PreTrainedTokenizerBase | None,
    after_step: Callable[[], None] | None = None,
    prefixes: PrefixStore | None = None,
) -> int:
    """Fill in every row's tokens, logprobs and stop_reason; return the most bytes the loop's KV
    cache held (at most `len(rows) x cache_length(rows)` positions). `after_step` runs after
    each step's tokens are appended (the sampler hands back the requests that finished).
    `prefixes`: where the rows' shared prefix may already be prefilled, and is kept if not."""
    device = precision.device
    lean_step = lean_decode_step(causal_lm)  # one-token steps without transformers' glue
    cache = GrowingKVCache(max_length=cache_length(rows))
    peak = 0
    shared = shared_prefix_length(rows)
    if shared:
        prefix = tuple(rows[0].prompt[:shared])
        _prefill_shared_prefix(causal_lm, prefix, len(rows), cache, precision, prefixes)
    ids, mask = _left_pad(rows, shared, pad_id, device)
    mask = torch.cat([mask.new_ones((len(rows), shared)), mask], dim=-1)
    positions = ((mask.cumsum(-1) - 1).clamp(min=0))[:, shared:]
    for row in rows:
        if row.settings.max_tokens <= 0:
            row.stop_reason = "length"
    live = rows
    while True:
        alive = torch.tensor([row.stop_reason is None for row in live], device=device)
        if not bool(alive.any()):
            return peak
        if not bool(alive.all()):  # finished rows leave the batch: later steps cost only live rows
            live = [row for row in live if row.stop_reason is None]
            ids, mask, positions = ids[alive], mask[alive], positions[alive]
            cache.batch_select_indices(alive.nonzero().squeeze(-1))
        with precision.autocast():
            if lean_step is not None and ids.shape[1] == 1:
                logits = lean_step(ids, mask, positions, cache)
            else:
                logits = causal_lm(
                    input_ids=ids,
                    attention_mask=mask,
                    position_ids=positions,
                    past_key_values=cache,
                    use_cache=True,
                    logits_to_keep=1,
                ).logits
        peak = max(peak, cache.nbytes)  # buffers only grow in a forward; leaving rows shrink them
        step_rows(live, logits[:, -1], tokenizer)
        if after_step is not None:
            after_step()
        ids = torch.tensor([row.tokens[-1] for row in live], dtype=torch.long, device=device)[
            :, None
        ]
        mask = torch.cat([mask, mask.new_ones((len(live), 1))], dim=-1)
        positions = positions[:, -1:] + 1


def _prefill_shared_prefix(
    causal_lm: PreTrainedModel,
    prefix: tuple[int, ...],
    batch: int,
    cache: GrowingKVCache,
    precision: Precision,
    prefixes: PrefixStore | None,
) -> None:
    """Run the common prefix once and copy its KV cache to every row (system prompts, few-shot
    examples and `num_samples` > 1 share it), so prefill costs one prefix plus the rows' tails.
    A prefix `prefixes` holds is not run again: its states are written into the cache as the
    forward wrote them (the same bits; under autocast the cache stores what it stored then)."""
    kept = prefixes.get(prefix) if prefixes is not None else None
    with precision.autocast():
        if kept is not None:
            for index, (keys, values) in enumerate(kept):
                cache.update(keys, values, index)
        else:
            ids = torch.tensor([prefix], dtype=torch.long, device=precision.device)
            causal_lm(input_ids=ids, past_key_values=cache, use_cache=True, logits_to_keep=1)
            states = _one_sequence(cache) if prefixes is not None else None
            if prefixes is not None and states is not None:
                prefixes.put(prefix, states)
    cache.batch_repeat_interleave(batch)


def _one_sequence(cache: GrowingKVCache) -> PrefixStates | None:
    """A copy of the cache's (one) sequence, layer by layer; None if a layer holds anything but
    plain keys and values (a linear-attention state cannot be replayed by `update`)."""
    states = []
    for layer in cache.layers:
        keys, values = getattr(layer, "keys", None), getattr(layer, "values", None)
        if not isinstance(keys, torch.Tensor) or not isinstance(values, torch.Tensor):
            return None
        states.append((keys.clone(), values.clone()))
    return states
