"""Sampler keys and the sampling entry point of the backend.

A sampler key names the weights a `SampleRequest` runs on: a base model name (no adapter), or
an opaque key for an adapter slot made by `add_adapter` (a snapshot of a training adapter) or
`load` (an adapter directory, cached by its resolved path). Adapter samplers are kept in an LRU
of `MAX_ADAPTER_SAMPLERS` so an RL loop that snapshots every iteration does not grow memory
without bound; an evicted snapshot (which exists nowhere else) goes to a `spill.SpillStore` on
disk and is loaded back under the same key when a client samples from it again (an evicted
directory adapter is reloaded from its directory by the server). Eviction waits until a batch
is done, so restoring snapshots for a batch never evicts another sampler the same batch uses.
`sample` validates every request, groups them by key and runs each group through one batched
`generation.generate` call, handing each request's result to the caller's `on_result` as soon
as its rows have finished (`_EarlyResults`); prompt logprobs come from the same forward code as
training's `forward`, so the two agree, batched over the group's requests (`compute_logprobs`
on four answer options of a question is four requests in one forward). A one-token request that
asks for prompt logprobs (what `compute_logprobs` sends) draws its token from the logits that
forward ends with and skips the decode loop.

KV-cache memory is budgeted: at most `kv_budget` bytes (the engine's sampling memory) at once.
One decode loop runs at a time, so a group's rows are packed into consecutive loops whose
cache (rows x (widest prompt + largest max_tokens) x `kv_bytes_per_token`) fits the budget:
requests that do not fit beside each other wait for the next loop. A request's rows stay
together in one loop unless they alone exceed it (or `MAX_BATCH_ROWS`); then they run in chunks
fixed by the request and the budget, never by what else is queued, so a seed gives the same
samples whatever runs beside it. A single sample longer than the budget is refused. A
directory adapter is cached by its path and that directory's identity (inode and times), so a
checkpoint saved again under the same name is loaded afresh and its old slot freed.

The KV states of a decode loop's shared prompt prefix (an eval's system prompt and few-shot
examples) are kept for the next loop on the same frozen weights (`_SharedPrefixes`: a base or a
snapshot, never a live sampler, whose weights change as its client trains), so an eval's
batches prefill its preamble once between them, not once each; the most recently used ones are
kept within a sixteenth of the KV budget (`PREFIX_SHARE`; memory on top of it, scaled with it so
a few-shot preamble of an 8B model is kept where the budget is a GPU's), and a sampler's go
with it.
"""

from __future__ import annotations

import copy
import os
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from peft import LoraConfig

from tinker_chief.engine.backend import (
    InvalidRequestError,
    NotFoundError,
    ResultHook,
    SampleRequest,
    SampleResult,
    check_kv_cache_fits,
)
from tinker_chief.engine.compute import checkpoint_io
from tinker_chief.engine.compute.adapters import AdapterHost
from tinker_chief.engine.compute.base_pool import LoadedBase
from tinker_chief.engine.compute.devices import Precision
from tinker_chief.engine.compute.forward import prompt_scores
from tinker_chief.engine.compute.generation import (
    PrefixStates,
    Row,
    cache_length,
    generate,
    step_rows,
)
from tinker_chief.engine.compute.kv_cache import kv_bytes_per_token
from tinker_chief.engine.compute.spill import SpillStore

MAX_ADAPTER_SAMPLERS = 32
PREFIX_SHARE = 16  # shared prefixes' KV states kept between decode loops: kv_budget / this, at most
MAX_BATCH_ROWS = 64  # rows per decode loop (its KV cache is also bounded by the budget)
MAX_SCORING_TOKENS = (
    16384  # padded prompt tokens per prompt-logprob forward: bounds its activations
)

Resolver = Callable[[str], tuple[LoadedBase, AdapterHost]]
LiveResolver = Callable[[str], "SamplerRef | None"]  # a live key -> the training adapter it follows
ScoredRequest = tuple[int, SampleRequest, list[Row]]  # (index in its group, request, its rows)
PromptScores = tuple[list | None, list | None]  # (prompt_logprobs, topk_prompt_logprobs)


@dataclass(frozen=True)
class SamplerRef:
    base_name: str
    slot: str | None  # None: the plain base model


class SamplerPool:
    def __init__(
        self,
        precision: Precision,
        resolve: Resolver,
        spill_root: Path | None = None,
        live: LiveResolver = lambda key: None,
        *,
        kv_budget: int,
    ) -> None:
        """`live` maps the keys of inflight samplers to the training adapter they sample (never
        cached or evicted here: the training model owns that slot). `kv_budget`: bytes of KV
        cache one decode loop may hold."""
        self.precision = precision
        self.kv_budget = kv_budget
        self._resolve = resolve
        self._live = live
        self._adapters: OrderedDict[str, SamplerRef] = OrderedDict()
        self._by_path: dict[str, tuple[tuple[int, ...], str]] = {}  # path -> (its identity, key)
        self._spilled = SpillStore(root=spill_root)
        self._prefixes = _SharedPrefixes(kv_budget // PREFIX_SHARE)
        self.stats = {"sampling_decode_loops": 0, "sampling_kv_peak_bytes": 0}

    def add_adapter(
        self, ref: SamplerRef, config: LoraConfig, weights: dict[str, torch.Tensor]
    ) -> str:
        """Load `weights` into a new frozen slot on `ref.base_name`; return its key."""
        key = self._load_slot(ref.base_name, config, weights)
        self._evict()
        return key

    def _load_slot(
        self,
        base_name: str,
        config: LoraConfig,
        weights: dict[str, torch.Tensor],
        key: str | None = None,
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
        identity = _identity(directory)
        cached = self._by_path.get(resolved)
        if cached is not None and cached[1] in self._adapters:
            if cached[0] == identity:
                self._adapters.move_to_end(cached[1])
                return cached[1]
            self._drop(cached[1])  # the directory was saved again: its old weights are stale
        files = checkpoint_io.read_adapter(directory, with_optimizer=False)
        key = self.add_adapter(SamplerRef(files.base_model, None), files.config, files.weights)
        self._by_path[resolved] = (identity, key)
        return key

    def _from_directory(self, key: str) -> bool:
        return any(k == key for _, k in self._by_path.values())

    def _evict(self) -> None:
        while len(self._adapters) > MAX_ADAPTER_SAMPLERS:
            key, ref = next(iter(self._adapters.items()))
            slot, host = ref.slot, self._resolve(ref.base_name)[1]
            assert slot is not None  # add_adapter gives every cached adapter its slot
            if not self._from_directory(key):  # a snapshot: nowhere else to load it back from
                self._spilled.put(
                    key, ref.base_name, copy.deepcopy(host.config(slot)), host.state_dict(slot)
                )
            self._drop(key)  # only once its weights are safe

    def _drop(self, key: str) -> None:
        """Free a cached adapter's slot and forget it (a directory adapter loads again on use)."""
        ref = self._adapters.pop(key)
        assert ref.slot is not None
        self._prefixes.forget(key)
        self._resolve(ref.base_name)[1].remove(ref.slot)
        self._by_path = {path: entry for path, entry in self._by_path.items() if entry[1] != key}

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
            raise NotFoundError(
                f"unknown sampler {key!r}: it was never created or has been released"
            ) from None

    def sample(
        self, requests: list[SampleRequest], on_result: ResultHook | None = None
    ) -> list[SampleResult]:
        """Every request's result, in order; each also goes to `on_result` as soon as it is
        ready (a decoded request's once its rows finish, while the loop goes on)."""
        try:
            return self._sample(requests, on_result)
        finally:
            self._evict()  # after the batch: restored snapshots must not evict a sampler it uses

    def _sample(
        self, requests: list[SampleRequest], on_result: ResultHook | None
    ) -> list[SampleResult]:
        results: list[SampleResult | None] = [None] * len(requests)
        groups: dict[str, list[int]] = {}
        for index, request in enumerate(requests):
            groups.setdefault(request.sampler, []).append(index)
        resolved = {key: self._lookup(key) for key in groups}
        for key, indices in groups.items():  # refuse a bad batch before computing any of it
            for index in indices:
                _validate(requests[index], resolved[key][0])
                request, kv_bytes = requests[index], self._kv_bytes(resolved[key][0])
                max_tokens = request.settings.max_tokens
                check_kv_cache_fits(len(request.prompt), max_tokens, kv_bytes, self.kv_budget)
        for key, indices in groups.items():
            base, host, slot = resolved[key]
            group = [requests[i] for i in indices]
            frozen = key in self._adapters or self._live(key) is None  # a snapshot or a base
            prefixes = _KeyedPrefixes(self._prefixes, key) if frozen else None
            if slot is None:
                with host.base_only():
                    self._run_group(base, group, indices, results, on_result, prefixes)
            else:
                host.activate(slot, inference=True)
                self._run_group(base, group, indices, results, on_result, prefixes)
        return [result for result in results if result is not None]

    def _run_group(
        self,
        base: LoadedBase,
        requests: list[SampleRequest],
        indices: list[int],
        results: list[SampleResult | None],
        on_result: ResultHook | None,
        prefixes: _KeyedPrefixes | None = None,
    ) -> None:
        rows_of = []
        for request in requests:
            seed = request.settings.seed
            generator = torch.Generator().manual_seed(seed) if seed is not None else None
            rows_of.append(
                [
                    Row(list(request.prompt), request.settings, generator)
                    for _ in range(request.num_samples)
                ]
            )
        needs_text = any(request.settings.stop_strings for request in requests)
        tokenizer = base.tokenizer if needs_text else None
        decoded = [rows for r, rows in zip(requests, rows_of) if not _first_token_from_scoring(r)]
        early = None
        if on_result is not None:
            decoded_only = [
                (index, rows)
                for index, request, rows in zip(indices, requests, rows_of)
                if not _scores(request)
            ]
            early = _EarlyResults(decoded_only, on_result, results)
        for loop in self._decode_loops(decoded, self._kv_bytes(base)):
            peak = generate(base.model, loop, self.precision, 0, tokenizer, early, prefixes)
            self.stats["sampling_decode_loops"] += 1
            self.stats["sampling_kv_peak_bytes"] = max(self.stats["sampling_kv_peak_bytes"], peak)
        scored = [
            (i, request, rows)
            for i, (request, rows) in enumerate(zip(requests, rows_of))
            if request.prompt_logprobs or request.topk_prompt_logprobs
        ]
        scores: dict[int, PromptScores] = {}
        for chunk in _scoring_chunks(scored):
            scores.update(self._score_prompts(base, chunk, tokenizer))
        for i, (index, rows) in enumerate(zip(indices, rows_of)):
            if early is not None and index in early.handed_back:
                continue
            prompt_logprobs, topk = scores.get(i, (None, None))
            results[index] = result = SampleResult(
                sequences=[row.result() for row in rows],
                prompt_logprobs=prompt_logprobs,
                topk_prompt_logprobs=topk,
            )
            if on_result is not None:
                on_result(index, result)

    def _kv_bytes(self, base: LoadedBase) -> int:
        return kv_bytes_per_token(base.model.config, self.precision.kv_dtype)

    def _decode_loops(self, rows_of: list[list[Row]], bytes_per_token: int) -> list[list[Row]]:
        """Rows packed, in order, into decode loops of at most `MAX_BATCH_ROWS` rows whose KV
        cache fits the budget; each request's rows in one loop, or in chunks of its own
        (module docstring)."""

        def rows_within_budget(rows: list[Row]) -> int:
            return self.kv_budget // (cache_length(rows) * bytes_per_token)

        loops: list[list[Row]] = []
        for rows in rows_of:
            if not rows:
                continue
            per_loop = max(1, min(MAX_BATCH_ROWS, rows_within_budget(rows[:1])))
            for start in range(0, len(rows), per_loop):
                chunk = rows[start : start + per_loop]
                joined = loops[-1] + chunk if loops else []
                if joined and len(joined) <= min(MAX_BATCH_ROWS, rows_within_budget(joined)):
                    loops[-1] = joined
                else:
                    loops.append(list(chunk))
        return loops

    @torch.no_grad()
    def _score_prompts(
        self, base: LoadedBase, scored: list[ScoredRequest], tokenizer
    ) -> dict[int, PromptScores]:
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
            prompt_logprobs = (
                [None, *logprobs[row, :length].tolist()] if request.prompt_logprobs else None
            )
            topk = None
            if request.topk_prompt_logprobs and top is not None:
                own = min(request.topk_prompt_logprobs, k)
                values = top[0][offset : offset + length, :own].tolist()
                ids = top[1][offset : offset + length, :own].tolist()
                topk = [
                    None,
                    *[list(zip(top_ids, top_values)) for top_ids, top_values in zip(ids, values)],
                ]
            scores[i] = (prompt_logprobs, topk)
            offset += length
            if _first_token_from_scoring(request):
                step_rows(rows, next_logits[row].expand(len(rows), -1), tokenizer)
        return scores


def _scores(request: SampleRequest) -> bool:
    """Whether the request asks for prompt logprobs (a forward of its own, after decoding)."""
    return request.prompt_logprobs or request.topk_prompt_logprobs > 0


def _first_token_from_scoring(request: SampleRequest) -> bool:
    """A one-token request that asks for prompt logprobs needs no decode loop: the scoring forward
    already ends with the logits its token is drawn from."""
    return _scores(request) and request.settings.max_tokens == 1 and len(request.prompt) >= 2


class _EarlyResults:
    """A decode loop's `after_step`: once all the rows of a request have finished, puts its result
    in the call's `results` and hands it (with its place in the call) to `on_result`, while the
    rows beside it go on decoding. The client gets a short answer without waiting for the
    batch's longest one and can resubmit while the loop still runs."""

    def __init__(
        self,
        requests: list[tuple[int, list[Row]]],
        on_result: ResultHook,
        results: list[SampleResult | None],
    ) -> None:
        self._waiting = requests
        self._on_result = on_result
        self._results = results  # the call's, filled in as requests finish
        self.handed_back: set[int] = set()

    def __call__(self) -> None:
        waiting = []
        for index, rows in self._waiting:
            if all(row.stop_reason is not None for row in rows):
                result = SampleResult(sequences=[row.result() for row in rows])
                self._results[index] = result
                self._on_result(index, result)
                self.handed_back.add(index)
            else:
                waiting.append((index, rows))
        self._waiting = waiting


def _scoring_chunks(scored: list[ScoredRequest]) -> list[list[ScoredRequest]]:
    """Groups whose padded batch stays within `MAX_SCORING_TOKENS` (one oversize prompt goes
    alone)."""
    chunks: list[list[ScoredRequest]] = []
    # Each item is its chunk's widest.
    for item in sorted(scored, key=lambda item: len(item[1].prompt)):
        if chunks and len(item[1].prompt) * (len(chunks[-1]) + 1) <= MAX_SCORING_TOKENS:
            chunks[-1].append(item)
        else:
            chunks.append([item])
    return chunks


def _identity(directory: Path) -> tuple[int, ...]:
    """What changes when a checkpoint directory is saved again (a new directory is renamed into
    place) while its path stays: its inode and times."""
    status = os.stat(directory)
    return (status.st_ino, status.st_mtime_ns, status.st_ctime_ns)


def _validate(request: SampleRequest, base: LoadedBase) -> None:
    settings, prompt = request.settings, request.prompt
    if not prompt:
        raise InvalidRequestError("the prompt is empty: send at least one token")
    bad = [token for token in prompt if not 0 <= token < base.vocab_size]
    if bad:
        raise InvalidRequestError(
            f"prompt token id {bad[0]} is outside the vocabulary "
            f"(valid ids are 0..{base.vocab_size - 1})"
        )
    limit = base.info.max_context_length
    if len(prompt) + max(settings.max_tokens, 0) > limit:
        raise InvalidRequestError(
            f"prompt length {len(prompt)} + max_tokens {settings.max_tokens} exceeds the model's "
            f"maximum context length {limit}"
        )
    checks = [
        (request.num_samples >= 1, f"num_samples must be at least 1, got {request.num_samples}"),
        (settings.max_tokens >= 0, f"max_tokens must be >= 0, got {settings.max_tokens}"),
        (settings.temperature >= 0, f"temperature must be >= 0, got {settings.temperature}"),
        (0 < settings.top_p <= 1, f"top_p must be in (0, 1], got {settings.top_p}"),
        (
            settings.top_k >= -1,
            f"top_k must be -1 (off) or a positive integer, got {settings.top_k}",
        ),
        (
            request.topk_prompt_logprobs >= 0,
            f"topk_prompt_logprobs must be >= 0, got {request.topk_prompt_logprobs}",
        ),
    ]
    for ok, message in checks:
        if not ok:
            raise InvalidRequestError(message)


class _SharedPrefixes:
    """Shared prompt prefixes' KV states by (sampler key, prefix), the least recently used
    dropped first past `max_bytes`; `reused` counts the prefills they saved."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.reused = 0
        self._states: OrderedDict[tuple[str, tuple[int, ...]], PrefixStates] = OrderedDict()

    def get(self, key: str, prefix: tuple[int, ...]) -> PrefixStates | None:
        states = self._states.get((key, prefix))
        if states is not None:
            self._states.move_to_end((key, prefix))
            self.reused += 1
        return states

    def put(self, key: str, prefix: tuple[int, ...], states: PrefixStates) -> None:
        if _nbytes(states) > self.max_bytes:
            return
        self._states[(key, prefix)] = states
        while sum(_nbytes(kept) for kept in self._states.values()) > self.max_bytes:
            self._states.popitem(last=False)

    def forget(self, key: str) -> None:
        """Drop a sampler's prefixes (its slot is freed; its key never names other weights)."""
        for entry in [entry for entry in self._states if entry[0] == key]:
            del self._states[entry]


@dataclass(frozen=True)
class _KeyedPrefixes:
    """`generation.PrefixStore` for one sampler key."""

    shared: _SharedPrefixes
    key: str

    def get(self, prefix: tuple[int, ...]) -> PrefixStates | None:
        return self.shared.get(self.key, prefix)

    def put(self, prefix: tuple[int, ...], states: PrefixStates) -> None:
        self.shared.put(self.key, prefix, states)


def _nbytes(states: PrefixStates) -> int:
    return sum(keys.nbytes + values.nbytes for keys, values in states)
