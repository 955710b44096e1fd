"""Sampler keys and the sampling entry point of the backend.

A sampler key names the weights a `SampleRequest` runs on: a base model name (no adapter), or
an opaque key for an adapter slot made by `add_adapter` (a snapshot of a training adapter) or
`load` (an adapter directory, cached by its resolved path). Adapter samplers are kept in an LRU
of `MAX_ADAPTER_SAMPLERS` so an RL loop that snapshots every iteration does not grow memory
without bound. `sample` validates every request, groups them by key and runs each group through
one batched `sampler.generate` call; prompt logprobs come from the same forward code as
training's `forward`, so the two agree, batched over the group's requests (`compute_logprobs`
on four answer options of a question is four requests in one forward).
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from tinker_chief.engine.backend import InvalidRequestError, NotFoundError, SampleRequest, SampleResult
from tinker_chief.engine.compute import checkpoint_io
from tinker_chief.engine.compute.adapters import AdapterHost
from tinker_chief.engine.compute.base_models import LoadedBase
from tinker_chief.engine.compute.devices import Precision
from tinker_chief.engine.compute.forward import target_logprobs
from tinker_chief.engine.compute.sampler import Row, generate

MAX_ADAPTER_SAMPLERS = 32
MAX_BATCH_ROWS = 64  # rows per decode loop: bounds the KV cache of one group
MAX_SCORING_TOKENS = 16384  # padded prompt tokens per prompt-logprob forward: bounds its activations

Resolver = Callable[[str], tuple[LoadedBase, AdapterHost]]


@dataclass(frozen=True)
class SamplerRef:
    base_name: str
    slot: str | None  # None: the plain base model


class SamplingService:
    def __init__(self, precision: Precision, resolve: Resolver) -> None:
        self.precision = precision
        self._resolve = resolve
        self._adapters: OrderedDict[str, SamplerRef] = OrderedDict()
        self._by_path: dict[str, str] = {}

    def add_adapter(self, ref: SamplerRef, config, weights: dict[str, torch.Tensor]) -> str:
        """Load `weights` into a new frozen slot on `ref.base_name`; return its key."""
        base, host = self._resolve(ref.base_name)
        slot = host.new_slot()
        host.add(slot, copy.deepcopy(config), seed=None)
        host.load_state_dict(slot, weights)
        for param in host.parameters(slot).values():
            param.requires_grad_(False)
        key = f"{base.info.name}@{slot}"
        self._adapters[key] = SamplerRef(base.info.name, slot)
        self._evict()
        return key

    def load(self, directory: Path) -> str:
        resolved = str(directory.resolve())
        key = self._by_path.get(resolved)
        if key in self._adapters:
            self._adapters.move_to_end(key)
            return key
        files = checkpoint_io.read_adapter(directory, with_optimizer=False)
        key = self.add_adapter(SamplerRef(files.base_model, None), files.config, files.weights)
        self._by_path[resolved] = key
        return key

    def _evict(self) -> None:
        while len(self._adapters) > MAX_ADAPTER_SAMPLERS:
            key, ref = self._adapters.popitem(last=False)
            self._resolve(ref.base_name)[1].remove(ref.slot)
            self._by_path = {path: k for path, k in self._by_path.items() if k != key}

    def _lookup(self, key: str) -> tuple[LoadedBase, AdapterHost, str | None]:
        if key in self._adapters:
            self._adapters.move_to_end(key)
            ref = self._adapters[key]
            return (*self._resolve(ref.base_name), ref.slot)
        try:
            return (*self._resolve(key), None)
        except NotFoundError:
            raise NotFoundError(f"unknown sampler {key!r}: it was never created or has been released") from None

    def sample(self, requests: list[SampleRequest]) -> list[SampleResult]:
        results: list[SampleResult | None] = [None] * len(requests)
        groups: dict[str, list[int]] = {}
        for index, request in enumerate(requests):
            groups.setdefault(request.sampler, []).append(index)
        resolved = {key: self._lookup(key) for key in groups}
        for key, indices in groups.items():  # refuse a bad batch before computing any of it
            for index in indices:
                _validate(requests[index], resolved[key][0])
        for key, indices in groups.items():
            base, host, slot = resolved[key]
            group = [requests[i] for i in indices]
            if slot is None:
                with host.base_only():
                    self._run_group(base, group, indices, results)
            else:
                host.activate(slot)
                self._run_group(base, group, indices, results)
        return [result for result in results if result is not None]

    def _run_group(self, base: LoadedBase, requests: list[SampleRequest], indices: list[int],
                   results: list[SampleResult | None]) -> None:
        rows_of = []
        for request in requests:
            seed = request.settings.seed
            generator = torch.Generator().manual_seed(seed) if seed is not None else None
            rows_of.append([Row(list(request.prompt), request.settings, generator)
                            for _ in range(request.num_samples)])
        flat = [row for rows in rows_of for row in rows]
        needs_text = any(row.settings.stop_strings for row in flat)
        tokenizer = base.tokenizer if needs_text else None
        for start in range(0, len(flat), MAX_BATCH_ROWS):
            generate(base.model, flat[start:start + MAX_BATCH_ROWS], self.precision, 0, tokenizer)
        group_results = [SampleResult(sequences=[row.result() for row in rows]) for rows in rows_of]
        scored = [(r, res) for r, res in zip(requests, group_results) if r.prompt_logprobs or r.topk_prompt_logprobs]
        for chunk in _scoring_chunks(scored):
            self._prompt_logprobs(base, chunk)
        for index, result in zip(indices, group_results):
            results[index] = result

    @torch.no_grad()
    def _prompt_logprobs(self, base: LoadedBase, scored: list[tuple[SampleRequest, SampleResult]]) -> None:
        """Prompt logprobs (and top-k) of several requests from one right-padded forward."""
        for request, result in scored:
            if len(request.prompt) < 2:  # nothing to score: the first token has no context
                result.prompt_logprobs = [None] if request.prompt_logprobs else None
                result.topk_prompt_logprobs = [None] if request.topk_prompt_logprobs else None
        scored = [(request, result) for request, result in scored if len(request.prompt) >= 2]
        if not scored:
            return
        width = max(len(request.prompt) for request, _ in scored) - 1
        tokens = torch.zeros((len(scored), width + 1), dtype=torch.long)
        mask = torch.zeros((len(scored), width), dtype=torch.float32)
        for row, (request, _) in enumerate(scored):
            tokens[row, :len(request.prompt)] = torch.tensor(request.prompt)
            mask[row, :len(request.prompt) - 1] = 1.0
        tokens, mask = tokens.to(self.precision.device), mask.to(self.precision.device)
        k = min(max(request.topk_prompt_logprobs for request, _ in scored), base.vocab_size)
        logprobs, top = target_logprobs(base.model, tokens[:, :-1], tokens[:, 1:], mask, self.precision, topk=k)
        offset = 0  # `top` is flattened over the real positions, row by row
        for row, (request, result) in enumerate(scored):
            length = len(request.prompt) - 1
            if request.prompt_logprobs:
                result.prompt_logprobs = [None, *logprobs[row, :length].tolist()]
            if request.topk_prompt_logprobs and top is not None:
                own = min(request.topk_prompt_logprobs, k)
                values = top[0][offset:offset + length, :own].tolist()
                ids = top[1][offset:offset + length, :own].tolist()
                result.topk_prompt_logprobs = [None, *[list(zip(i, v)) for i, v in zip(ids, values)]]
            offset += length


def _scoring_chunks(scored: list[tuple[SampleRequest, SampleResult]]) -> list[list[tuple[SampleRequest, SampleResult]]]:
    """Groups whose padded batch stays within `MAX_SCORING_TOKENS` (one oversize prompt goes alone)."""
    chunks: list[list[tuple[SampleRequest, SampleResult]]] = []
    for item in sorted(scored, key=lambda pair: len(pair[0].prompt)):  # each item is its chunk's widest
        if chunks and len(item[0].prompt) * (len(chunks[-1]) + 1) <= MAX_SCORING_TOKENS:
            chunks[-1].append(item)
        else:
            chunks.append([item])
    return chunks


def _validate(request: SampleRequest, base: LoadedBase) -> None:
    settings, prompt = request.settings, request.prompt
    if not prompt:
        raise InvalidRequestError("the prompt is empty: send at least one token")
    bad = [token for token in prompt if not 0 <= token < base.vocab_size]
    if bad:
        raise InvalidRequestError(
            f"prompt token id {bad[0]} is outside the vocabulary (valid ids are 0..{base.vocab_size - 1})"
        )
    limit = base.info.max_context_length
    if len(prompt) + max(settings.max_tokens, 0) > limit:
        raise InvalidRequestError(
            f"prompt length {len(prompt)} + max_tokens {settings.max_tokens} exceeds the model's maximum "
            f"context length {limit}"
        )
    checks = [
        (request.num_samples >= 1, f"num_samples must be at least 1, got {request.num_samples}"),
        (settings.max_tokens >= 0, f"max_tokens must be >= 0, got {settings.max_tokens}"),
        (settings.temperature >= 0, f"temperature must be >= 0, got {settings.temperature}"),
        (0 < settings.top_p <= 1, f"top_p must be in (0, 1], got {settings.top_p}"),
        (settings.top_k >= -1, f"top_k must be -1 (off) or a positive integer, got {settings.top_k}"),
        (request.topk_prompt_logprobs >= 0,
         f"topk_prompt_logprobs must be >= 0, got {request.topk_prompt_logprobs}"),
    ]
    for ok, message in checks:
        if not ok:
            raise InvalidRequestError(message)
