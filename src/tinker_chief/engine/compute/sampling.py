"""Sampler keys and the sampling entry point of the backend.

A sampler key names the weights a `SampleRequest` runs on: a base model name (no adapter), or
an opaque key for an adapter slot made by `add_adapter` (a snapshot of a training adapter) or
`load` (an adapter directory, cached by its resolved path). Adapter samplers are kept in an LRU
of `MAX_ADAPTER_SAMPLERS` so an RL loop that snapshots every iteration does not grow memory
without bound; an evicted snapshot (which exists nowhere else) goes to a `spill.SpillStore` on
disk and is loaded back under the same key when a client samples from it again (an evicted
directory adapter is reloaded from its directory by the server). Eviction waits until a batch
is done, so restoring snapshots for a batch never evicts another sampler the same batch uses.
`sample` validates every request, groups them by key and runs each group through
one batched `sampler.generate` call; prompt logprobs come from the same forward code as
training's `forward`, so the two agree, batched over the group's requests (`compute_logprobs`
on four answer options of a question is four requests in one forward). A one-token request that
asks for prompt logprobs (what `compute_logprobs` sends) draws its token from the logits that
forward ends with and skips the decode loop.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from peft import LoraConfig

from tinker_chief.engine.backend import InvalidRequestError, NotFoundError, SampleRequest, SampleResult
from tinker_chief.engine.compute import checkpoint_io
from tinker_chief.engine.compute.adapters import AdapterHost
from tinker_chief.engine.compute.base_models import LoadedBase
from tinker_chief.engine.compute.devices import Precision
from tinker_chief.engine.compute.forward import prompt_scores
from tinker_chief.engine.compute.sampler import Row, generate, step_rows
from tinker_chief.engine.compute.spill import SpillStore

MAX_ADAPTER_SAMPLERS = 32
MAX_BATCH_ROWS = 64  # rows per decode loop: bounds the KV cache of one group
MAX_SCORING_TOKENS = 16384  # padded prompt tokens per prompt-logprob forward: bounds its activations

Resolver = Callable[[str], tuple[LoadedBase, AdapterHost]]
LiveResolver = Callable[[str], "SamplerRef | None"]  # a live key -> the training adapter it follows
ScoredRequest = tuple[int, SampleRequest, list[Row]]  # (index in its group, request, its rows)
PromptScores = tuple[list | None, list | None]  # (prompt_logprobs, topk_prompt_logprobs)


@dataclass(frozen=True)
class SamplerRef:
    base_name: str
    slot: str | None  # None: the plain base model


class SamplingService:
    def __init__(
        self,
        precision: Precision,
        resolve: Resolver,
        spill_root: Path | None = None,
        live: LiveResolver = lambda key: None,
    ) -> None:
        """`live` maps the keys of inflight samplers to the training adapter they sample (never
        cached or evicted here: the training model owns that slot)."""
        self.precision = precision
        self._resolve = resolve
        self._live = live
        self._adapters: OrderedDict[str, SamplerRef] = OrderedDict()
        self._by_path: dict[str, str] = {}
        self._spilled = SpillStore(root=spill_root)

    def add_adapter(self, ref: SamplerRef, config: LoraConfig, weights: dict[str, torch.Tensor]) -> str:
        """Load `weights` into a new frozen slot on `ref.base_name`; return its key."""
        key = self._load_slot(ref.base_name, config, weights)
        self._evict()
        return key

    def _load_slot(
        self, base_name: str, config: LoraConfig, weights: dict[str, torch.Tensor], key: str | None = None
    ) -> str:
        """A new frozen adapter slot holding `weights`, registered under `key` (by default one
        made from its base and slot names); returns the key."""
        base, host = self._resolve(base_name)
        slot = host.new_slot()
        host.add(slot, copy.deepcopy(config), seed=None)
        try:
            host.load_state_dict(slot, weights)
        except Exception:
            host.remove(slot)
            raise
        for param in host.parameters(slot).values():
            param.requires_grad_(False)
        key = key or f"{base.info.name}@{slot}"
        self._adapters[key] = SamplerRef(base.info.name, slot)
        return key

    def load(self, directory: Path) -> str:
        resolved = str(directory.resolve())
        key = self._by_path.get(resolved)
        if key is not None and key in self._adapters:
            self._adapters.move_to_end(key)
            return key
        files = checkpoint_io.read_adapter(directory, with_optimizer=False)
        key = self.add_adapter(SamplerRef(files.base_model, None), files.config, files.weights)
        self._by_path[resolved] = key
        return key

    def _evict(self) -> None:
        while len(self._adapters) > MAX_ADAPTER_SAMPLERS:
            key, ref = next(iter(self._adapters.items()))
            slot, host = ref.slot, self._resolve(ref.base_name)[1]
            assert slot is not None  # add_adapter gives every cached adapter its slot
            if key not in self._by_path.values():  # a snapshot: nowhere else to load it back from
                self._spilled.put(key, ref.base_name, copy.deepcopy(host.config(slot)), host.state_dict(slot))
            del self._adapters[key]  # only once its weights are safe
            host.remove(slot)
            self._by_path = {path: k for path, k in self._by_path.items() if k != key}

    def _lookup(self, key: str) -> tuple[LoadedBase, AdapterHost, str | None]:
        if key in self._spilled and (spilled := self._spilled.read(key)) is not None:
            self._load_slot(*spilled, key=key)
            self._spilled.forget(key)  # only once it is loaded again
        if key in self._adapters:
            self._adapters.move_to_end(key)
            ref = self._adapters[key]
            return (*self._resolve(ref.base_name), ref.slot)
        if (live := self._live(key)) is not None:
            return (*self._resolve(live.base_name), live.slot)
        if self._spilled.was_dropped(key):
            raise NotFoundError(
                f"sampler {key!r} was released: the engine keeps the {MAX_ADAPTER_SAMPLERS} most "
                "recently used snapshots in memory and older ones on disk up to a size limit; "
                "save_weights_for_sampler gives a checkpoint that never expires"
            )
        try:
            return (*self._resolve(key), None)
        except NotFoundError:
            raise NotFoundError(f"unknown sampler {key!r}: it was never created or has been released") from None

    def sample(self, requests: list[SampleRequest]) -> list[SampleResult]:
        try:
            return self._sample(requests)
        finally:
            self._evict()  # after the batch: restored snapshots must not evict a sampler it uses

    def _sample(self, requests: list[SampleRequest]) -> list[SampleResult]:
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
                host.activate(slot, inference=True)
                self._run_group(base, group, indices, results)
        return [result for result in results if result is not None]

    def _run_group(
        self, base: LoadedBase, requests: list[SampleRequest], indices: list[int], results: list[SampleResult | None]
    ) -> None:
        rows_of = []
        for request in requests:
            seed = request.settings.seed
            generator = torch.Generator().manual_seed(seed) if seed is not None else None
            rows_of.append([Row(list(request.prompt), request.settings, generator) for _ in range(request.num_samples)])
        needs_text = any(request.settings.stop_strings for request in requests)
        tokenizer = base.tokenizer if needs_text else None
        flat = [
            row for request, rows in zip(requests, rows_of) if not _first_token_from_scoring(request) for row in rows
        ]
        for start in range(0, len(flat), MAX_BATCH_ROWS):
            generate(base.model, flat[start : start + MAX_BATCH_ROWS], self.precision, 0, tokenizer)
        scored = [
            (i, request, rows)
            for i, (request, rows) in enumerate(zip(requests, rows_of))
            if request.prompt_logprobs or request.topk_prompt_logprobs
        ]
        scores: dict[int, PromptScores] = {}
        for chunk in _scoring_chunks(scored):
            scores.update(self._score_prompts(base, chunk, tokenizer))
        for i, (index, rows) in enumerate(zip(indices, rows_of)):
            prompt_logprobs, topk = scores.get(i, (None, None))
            results[index] = SampleResult(
                sequences=[row.result() for row in rows], prompt_logprobs=prompt_logprobs, topk_prompt_logprobs=topk
            )

    @torch.no_grad()
    def _score_prompts(self, base: LoadedBase, scored: list[ScoredRequest], tokenizer) -> dict[int, PromptScores]:
        """Prompt logprobs (and top-k) of several requests from one right-padded forward; a
        one-token request (the SDK's `compute_logprobs`) also gets its token from that forward."""
        scores: dict[int, PromptScores] = {}
        for i, request, _ in scored:
            if len(request.prompt) < 2:  # nothing to score: the first token has no context
                scores[i] = (
                    [None] if request.prompt_logprobs else None,
                    [None] if request.topk_prompt_logprobs else None,
                )
        scored = [item for item in scored if len(item[1].prompt) >= 2]
        if not scored:
            return scores
        lengths = [len(request.prompt) for _, request, _ in scored]
        prompts = torch.zeros((len(scored), max(lengths)), dtype=torch.long)
        for row, (_, request, _) in enumerate(scored):
            prompts[row, : len(request.prompt)] = torch.tensor(request.prompt)
        k = min(max(request.topk_prompt_logprobs for _, request, _ in scored), base.vocab_size)
        logprobs, top, next_logits = prompt_scores(
            base.model, prompts.to(self.precision.device), lengths, self.precision, topk=k
        )
        offset = 0  # `top` is flattened over the scored positions, row by row
        for row, (i, request, rows) in enumerate(scored):
            length = len(request.prompt) - 1
            prompt_logprobs = [None, *logprobs[row, :length].tolist()] if request.prompt_logprobs else None
            topk = None
            if request.topk_prompt_logprobs and top is not None:
                own = min(request.topk_prompt_logprobs, k)
                values = top[0][offset : offset + length, :own].tolist()
                ids = top[1][offset : offset + length, :own].tolist()
                topk = [None, *[list(zip(top_ids, top_values)) for top_ids, top_values in zip(ids, values)]]
            scores[i] = (prompt_logprobs, topk)
            offset += length
            if _first_token_from_scoring(request):
                step_rows(rows, next_logits[row].expand(len(rows), -1), tokenizer)
        return scores


def _first_token_from_scoring(request: SampleRequest) -> bool:
    """A one-token request that asks for prompt logprobs needs no decode loop: the scoring forward
    already ends with the logits its token is drawn from."""
    scores = request.prompt_logprobs or request.topk_prompt_logprobs > 0
    return scores and request.settings.max_tokens == 1 and len(request.prompt) >= 2


def _scoring_chunks(scored: list[ScoredRequest]) -> list[list[ScoredRequest]]:
    """Groups whose padded batch stays within `MAX_SCORING_TOKENS` (one oversize prompt goes alone)."""
    chunks: list[list[ScoredRequest]] = []
    for item in sorted(scored, key=lambda item: len(item[1].prompt)):  # each item is its chunk's widest
        if chunks and len(item[1].prompt) * (len(chunks[-1]) + 1) <= MAX_SCORING_TOKENS:
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
        (request.topk_prompt_logprobs >= 0, f"topk_prompt_logprobs must be >= 0, got {request.topk_prompt_logprobs}"),
    ]
    for ok, message in checks:
        if not ok:
            raise InvalidRequestError(message)
