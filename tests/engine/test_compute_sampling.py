"""TorchBackend sampling on tiny-random-llama in fp32: determinism, seeds, stops, batching,
logprobs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tinker_chief.engine.backend import (
    AdamStep,
    DatumArrays,
    LoraSettings,
    NotFoundError,
    SampleRequest,
    SamplingSettings,
)
from tinker_chief.engine.compute import TorchBackend

from compute_support import (
    TINY_MODEL,
    assert_growing_cache_matches_dynamic_cache,
    assert_lean_decode_matches_transformers,
    fresh_id,
    sft_batch,
)

PROMPTS = [
    (1, 72, 101, 108, 108, 111),
    (1, 87, 104, 97, 116),
    (1, 65, 66, 67, 68, 69, 70, 71, 72),
    (1, 50),
]


@pytest.fixture(scope="module")
def backend() -> TorchBackend:
    return TorchBackend(device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def trained(backend) -> str:
    """A sampler key for an adapter trained a few steps (so it differs from the base)."""
    model_id = fresh_id("sampled")
    backend.create_training_model(model_id, TINY_MODEL, LoraSettings(rank=4, seed=1))
    for seed in range(3):
        backend.forward_backward(model_id, sft_batch(seed), "cross_entropy", {}, False)
        backend.optim_step(model_id, AdamStep(learning_rate=0.05))
    return model_id


def request(sampler, prompt, max_tokens=12, n=1, **settings) -> SampleRequest:
    return SampleRequest(
        sampler, tuple(prompt), n, SamplingSettings(max_tokens=max_tokens, **settings)
    )


def greedy(backend, sampler, prompt, **kw):
    return backend.sample([request(sampler, prompt, temperature=0.0, **kw)])[0].sequences[0]


def test_greedy_is_deterministic_and_batching_does_not_change_it(backend, trained):
    key = backend.snapshot_for_sampling(trained)
    alone = [greedy(backend, key, p).tokens for p in PROMPTS]
    batched = backend.sample([request(key, p, temperature=0.0) for p in PROMPTS])
    assert [r.sequences[0].tokens for r in batched] == alone
    assert [greedy(backend, key, p).tokens for p in PROMPTS] == alone
    assert all(len(tokens) == 12 for tokens in alone)
    assert all(r.sequences[0].stop_reason == "length" for r in batched)


def test_shared_prompt_prefix_is_prefilled_once_with_the_same_results(backend, trained):
    """Prompts with a common system-prompt-like prefix (and n copies of one prompt) take the
    shared-prefix path, and give the same tokens and logprobs as each prompt sampled alone."""
    from tinker_chief.engine.compute.generation import MIN_SHARED_PREFIX, Row, shared_prefix_length

    key = backend.snapshot_for_sampling(trained)
    prefix = tuple(range(40, 40 + MIN_SHARED_PREFIX + 4))
    prompts = [prefix + tail for tail in ((72, 101), (87,), (65, 66, 67))]
    rows = [Row(list(p), SamplingSettings(max_tokens=1), None) for p in prompts]
    assert shared_prefix_length(rows) == len(prefix)
    assert shared_prefix_length(rows[:1]) == 0
    assert (
        shared_prefix_length([Row([1, 2, 3], SamplingSettings(max_tokens=1), None)] * 2) == 0
    )  # too short to share

    alone = [greedy(backend, key, p) for p in prompts]
    batched = backend.sample([request(key, p, temperature=0.0, n=2) for p in prompts])
    for single, result in zip(alone, batched):
        for sequence in result.sequences:
            assert sequence.tokens == single.tokens
            np.testing.assert_allclose(sequence.logprobs, single.logprobs, atol=1e-4)


def test_rows_that_finish_early_leave_the_batch_without_changing_the_others(backend, trained):
    """Rows stop at different steps (max_tokens 1..12, a stop token, a seeded sampled row); the
    batch shrinks as they finish, and every row still gets what it gets when sampled alone."""
    key = backend.snapshot_for_sampling(trained)
    full = greedy(backend, key, PROMPTS[0], max_tokens=12).tokens
    requests = [
        request(key, PROMPTS[0], max_tokens=12, temperature=0.0, stop_tokens=(full[2],)),
        request(key, PROMPTS[1], max_tokens=1, temperature=0.0),
        request(key, PROMPTS[2], max_tokens=12, temperature=1.0, seed=3),
        request(key, PROMPTS[3], max_tokens=5, temperature=0.0),
        request(key, PROMPTS[1], max_tokens=0, temperature=0.0),
    ]
    alone = [backend.sample([r])[0].sequences[0] for r in requests]
    batched = [result.sequences[0] for result in backend.sample(requests)]
    assert [len(s.tokens) for s in alone] == [full.index(full[2]) + 1, 1, 12, 5, 0]
    for single, together in zip(alone, batched):
        assert together.tokens == single.tokens and together.stop_reason == single.stop_reason
        np.testing.assert_allclose(together.logprobs, single.logprobs, atol=1e-4)


def test_grouped_decode_attention_matches_transformers_sdpa():
    """The decode-step attention that skips repeat_kv gives the logits of transformers' own SDPA
    path on a left-padded batch (tiny-random-llama has 4 query heads per 2 key/value heads)."""
    import torch
    from transformers import DynamicCache

    from tinker_chief.engine.compute.attention import GROUPED_DECODE
    from tinker_chief.engine.compute.base_pool import load_frozen_causal_lm
    from tinker_chief.models import materialize_model, resolve_model

    model = load_frozen_causal_lm(materialize_model(resolve_model(TINY_MODEL)), "cpu")
    assert model.config._attn_implementation == GROUPED_DECODE
    assert model.model.layers[0].self_attn.num_key_value_groups == 2
    ids = torch.tensor([[2, 2, 2, 72, 101, 108], [1, 87, 104, 97, 116, 33]])
    mask = (torch.arange(6) >= torch.tensor([[3], [0]])).long()
    positions = (mask.cumsum(-1) - 1).clamp(min=0)

    def next_logits(implementation: str) -> torch.Tensor:
        model.set_attn_implementation(implementation)
        cache = DynamicCache()
        with torch.no_grad():
            model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache)
            step = model(
                input_ids=torch.tensor([[5], [6]]),
                attention_mask=torch.cat([mask, mask[:, :1] * 0 + 1], -1),
                position_ids=positions[:, -1:] + 1,
                past_key_values=cache,
            )
        return step.logits[:, -1]

    grouped = next_logits(GROUPED_DECODE)
    reference = next_logits("sdpa")
    torch.testing.assert_close(grouped, reference, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(grouped[0], grouped[1])  # the rows really differ


def test_seed_reproduces_samples(backend):
    settings = dict(temperature=1.0, max_tokens=16, n=3)
    first = backend.sample([request(TINY_MODEL, PROMPTS[0], seed=5, **settings)])[0]
    again = backend.sample(
        [
            request(TINY_MODEL, PROMPTS[0], seed=5, **settings),
            request(TINY_MODEL, PROMPTS[1], seed=9, **settings),
        ]
    )[0]
    other = backend.sample([request(TINY_MODEL, PROMPTS[0], seed=6, **settings)])[0]
    assert [s.tokens for s in first.sequences] == [s.tokens for s in again.sequences]
    assert [s.tokens for s in first.sequences] != [s.tokens for s in other.sequences]
    assert len({tuple(s.tokens) for s in first.sequences}) > 1  # num_samples draws differ


def test_top_k_one_equals_greedy(backend, trained):
    key = backend.snapshot_for_sampling(trained)
    sampled = backend.sample([request(key, PROMPTS[2], temperature=1.0, top_k=1, seed=0)])[
        0
    ].sequences[0]
    assert sampled.tokens == greedy(backend, key, PROMPTS[2]).tokens


def test_stop_token_and_stop_string(backend, trained):
    key = backend.snapshot_for_sampling(trained)
    full = greedy(backend, key, PROMPTS[0], max_tokens=10).tokens
    stop_at = 3
    first_hit = full.index(full[stop_at])
    by_token = greedy(backend, key, PROMPTS[0], max_tokens=10, stop_tokens=(full[stop_at],))
    assert by_token.tokens == full[: first_hit + 1] and by_token.stop_reason == "stop"
    text = backend._bases.get(TINY_MODEL).tokenizer.decode(full[: stop_at + 1])
    by_string = greedy(backend, key, PROMPTS[0], max_tokens=10, stop_strings=(text,))
    assert by_string.tokens == full[: stop_at + 1] and by_string.stop_reason == "stop"


def test_sampled_and_prompt_logprobs_agree_with_forward(backend, trained):
    key = backend.snapshot_for_sampling(trained)
    result = backend.sample(
        [
            SampleRequest(
                key,
                PROMPTS[2],
                1,
                SamplingSettings(max_tokens=6, temperature=1.0, seed=2),
                prompt_logprobs=True,
                topk_prompt_logprobs=3,
            )
        ]
    )[0]
    sequence = result.sequences[0]
    tokens = list(PROMPTS[2]) + sequence.tokens
    datum = DatumArrays(
        np.array(tokens[:-1]),
        {"target_tokens": np.array(tokens[1:]), "weights": np.ones(len(tokens) - 1, np.float32)},
    )
    scored = backend.forward_backward(trained, [datum], "cross_entropy", {}, True).outputs[0][
        "logprobs"
    ]
    prompt_len = len(PROMPTS[2])
    np.testing.assert_allclose(sequence.logprobs, scored[prompt_len - 1 :], atol=1e-4)
    assert result.prompt_logprobs[0] is None
    np.testing.assert_allclose(result.prompt_logprobs[1:], scored[: prompt_len - 1], atol=1e-4)
    top = result.topk_prompt_logprobs
    assert top[0] is None and all(len(entry) == 3 for entry in top[1:])
    assert all(
        entry[0][1] >= result.prompt_logprobs[i + 1] - 1e-5 for i, entry in enumerate(top[1:])
    )


def test_prompt_logprobs_of_a_batch_equal_each_request_alone(backend, trained, monkeypatch):
    """Scoring requests of different lengths and top-k go through one padded forward (or several,
    when they exceed MAX_SCORING_TOKENS) and give what each request gives alone."""
    from tinker_chief.engine.compute import sampler_pool

    key = backend.snapshot_for_sampling(trained)
    requests = [
        SampleRequest(
            key,
            prompt,
            1,
            SamplingSettings(max_tokens=1, temperature=0.0),
            prompt_logprobs=True,
            topk_prompt_logprobs=topk,
        )
        for prompt, topk in zip([*PROMPTS, (7,)], (0, 2, 5, 1, 3))
    ]
    alone = [backend.sample([r])[0] for r in requests]
    for limit in (sampler_pool.MAX_SCORING_TOKENS, 12):  # 12: several chunks
        monkeypatch.setattr(sampler_pool, "MAX_SCORING_TOKENS", limit)
        together = backend.sample(requests)
        for single, batched, request in zip(alone, together, requests):
            assert batched.prompt_logprobs[0] is None
            np.testing.assert_allclose(
                batched.prompt_logprobs[1:], single.prompt_logprobs[1:], atol=1e-4
            )
            assert len(batched.prompt_logprobs) == len(request.prompt)
            if request.topk_prompt_logprobs:
                assert [[t for t, _ in e] for e in batched.topk_prompt_logprobs[1:]] == [
                    [t for t, _ in e] for e in single.topk_prompt_logprobs[1:]
                ]
                assert all(
                    len(e) == request.topk_prompt_logprobs for e in batched.topk_prompt_logprobs[1:]
                )
            else:
                assert batched.topk_prompt_logprobs is None
    assert alone[-1].prompt_logprobs == [None] and alone[-1].topk_prompt_logprobs == [None]


def test_compute_logprobs_token_comes_from_the_scoring_forward_unchanged(backend, trained):
    """A one-token request with prompt logprobs (the SDK's compute_logprobs) skips the decode loop;
    its token, logprob and seeded draws equal those of the decode loop (the same request without
    prompt logprobs)."""
    key = backend.snapshot_for_sampling(trained)
    for settings in (
        SamplingSettings(max_tokens=1, temperature=0.0),
        SamplingSettings(max_tokens=1, temperature=1.0, seed=4),
    ):
        plain = [SampleRequest(key, p, 3, settings) for p in PROMPTS]
        scoring = [SampleRequest(key, p, 3, settings, prompt_logprobs=True) for p in PROMPTS]
        for decoded, scored in zip(backend.sample(plain), backend.sample(scoring)):
            assert decoded.prompt_logprobs is None and scored.prompt_logprobs is not None
            for a, b in zip(decoded.sequences, scored.sequences):
                assert (a.tokens, a.stop_reason) == (b.tokens, b.stop_reason)
                np.testing.assert_allclose(a.logprobs, b.logprobs, atol=1e-4)


def test_snapshot_is_frozen_and_base_is_untouched(backend):
    model_id = fresh_id("snap")
    backend.create_training_model(model_id, TINY_MODEL, LoraSettings(rank=4, seed=3))
    base_before = greedy(backend, TINY_MODEL, PROMPTS[1]).logprobs
    backend.forward_backward(model_id, sft_batch(4), "cross_entropy", {}, False)
    backend.optim_step(model_id, AdamStep(learning_rate=0.1))
    key = backend.snapshot_for_sampling(model_id)
    snapshot_before = greedy(backend, key, PROMPTS[1]).logprobs
    backend.forward_backward(model_id, sft_batch(5), "cross_entropy", {}, False)
    backend.optim_step(model_id, AdamStep(learning_rate=0.1))
    assert greedy(backend, key, PROMPTS[1]).logprobs == snapshot_before
    assert greedy(backend, TINY_MODEL.upper(), PROMPTS[1]).logprobs == base_before
    assert snapshot_before != base_before


def test_load_sampler_from_saved_weights_matches_snapshot(backend, trained, tmp_path):
    backend.save_sampler_weights(trained, tmp_path / "sampler")
    loaded = backend.load_sampler(tmp_path / "sampler")
    assert backend.load_sampler(tmp_path / "sampler") == loaded  # cached by path
    snapshot = backend.snapshot_for_sampling(trained)
    assert (
        greedy(backend, loaded, PROMPTS[3]).logprobs
        == greedy(backend, snapshot, PROMPTS[3]).logprobs
    )


def test_unknown_sampler_is_not_found(backend):
    with pytest.raises(NotFoundError, match="unknown sampler"):
        backend.sample([request("no-such-sampler", PROMPTS[0])])


def test_growing_kv_cache_generates_what_dynamic_cache_generates(backend, trained, monkeypatch):
    assert_growing_cache_matches_dynamic_cache(
        backend, backend.snapshot_for_sampling(trained), monkeypatch
    )


def test_lean_decode_step_samples_what_transformers_samples(backend, trained, monkeypatch):
    """fp32, through a trained LoRA adapter (PEFT's layers take part in the lean step)."""
    assert_lean_decode_matches_transformers(
        backend, backend.snapshot_for_sampling(trained), monkeypatch
    )


def test_evicted_snapshots_of_two_bases_come_back_in_one_batch(monkeypatch, tmp_path):
    """Snapshots beyond the adapter cache are spilled to disk, not lost. Two base models (whose
    adapter slots share names) each snapshot four times into a cache of two; one batch then
    samples all eight, more than the cache holds, and each gives exactly what it gave before."""
    import shutil

    from tinker_chief.engine.compute import sampler_pool
    from tinker_chief.models import materialize_model

    monkeypatch.setattr(sampler_pool, "MAX_ADAPTER_SAMPLERS", 2)
    twin = tmp_path / "tiny-twin"  # a second base: the same weights from a local directory
    shutil.copytree(materialize_model(TINY_MODEL), twin)
    backend = TorchBackend(device="cpu", dtype="float32")
    keys, before = [], []
    for base in (TINY_MODEL, str(twin)):
        model_id = fresh_id("spill")
        backend.create_training_model(model_id, base, LoraSettings(rank=4, seed=len(keys)))
        for seed in range(4):
            backend.forward_backward(
                model_id, sft_batch(seed + len(keys)), "cross_entropy", {}, False
            )
            backend.optim_step(model_id, AdamStep(learning_rate=0.05))
            keys.append(backend.snapshot_for_sampling(model_id))
            before.append(greedy(backend, keys[-1], PROMPTS[0]))
    assert len({tuple(seq.logprobs) for seq in before}) == 8  # eight really different adapters
    together = backend.sample([request(key, PROMPTS[0], temperature=0.0) for key in keys])
    for result, expected in zip(together, before):
        again = result.sequences[0]
        assert (again.tokens, again.logprobs) == (expected.tokens, expected.logprobs)


def test_each_result_is_handed_over_as_soon_as_its_rows_finish(backend, trained, monkeypatch):
    """`sample(..., on_result)` gets a short request's result after its own last decode step,
    while the long one beside it goes on; a request that scores its prompt comes after its
    scoring forward. Every result handed over is the one the call returns."""
    from tinker_chief.engine.compute import generation

    steps = []
    step_rows = generation.step_rows
    monkeypatch.setattr(generation, "step_rows", lambda *args: steps.append(1) or step_rows(*args))
    key = backend.snapshot_for_sampling(trained)
    requests = [
        request(key, PROMPTS[0], max_tokens=12, temperature=0.0),
        request(key, PROMPTS[1], max_tokens=2, temperature=0.0, n=2),
        SampleRequest(key, PROMPTS[2], 1, SamplingSettings(max_tokens=3), prompt_logprobs=True),
    ]
    handed: list[tuple[int, int, object]] = []  # (index, decode steps so far, result)
    results = backend.sample(
        requests, lambda index, result: handed.append((index, len(steps), result))
    )
    assert [(index, at) for index, at, _ in handed] == [(1, 2), (0, 12), (2, 12)]
    assert all(results[index] is result for index, _, result in handed)
    assert results[2].prompt_logprobs is not None and len(results[2].sequences[0].tokens) == 3


SHARED = (1, *range(40, 56))  # a preamble every request starts with (a system prompt, few-shot)


def _preamble_requests(key: str) -> list[SampleRequest]:
    return [
        request(key, SHARED + tail, max_tokens=6, temperature=0.0)
        for tail in ((72, 101), (87,), (65, 66, 67))
    ]


def test_a_shared_prefix_is_prefilled_once_across_batches_with_the_same_results(
    backend, trained, monkeypatch
):
    """The second batch on the same snapshot writes the preamble's kept KV states instead of
    running it again; the tokens and logprobs are those of a fresh prefill, bit for bit."""
    from tinker_chief.engine.compute import sampler_pool

    key = backend.snapshot_for_sampling(trained)
    shared = backend.samplers._prefixes
    before = shared.reused
    first = backend.sample(_preamble_requests(key))
    again = backend.sample(_preamble_requests(key))
    assert shared.reused == before + 1
    monkeypatch.setattr(sampler_pool._SharedPrefixes, "get", lambda self, key, prefix: None)
    fresh = backend.sample(_preamble_requests(key))
    for a, b, c in zip(first, again, fresh):
        assert a.sequences[0].tokens == b.sequences[0].tokens == c.sequences[0].tokens
        assert a.sequences[0].logprobs == b.sequences[0].logprobs == c.sequences[0].logprobs


def test_a_live_sampler_prefills_its_preamble_every_time(backend):
    """A live sampler's weights change as its client trains: nothing of its prefills is kept,
    so after a training step it samples what a snapshot of the new weights samples."""
    model_id = fresh_id("live")
    backend.create_training_model(model_id, TINY_MODEL, LoraSettings(rank=4, seed=2))
    live = backend.live_sampler(model_id)
    shared = backend.samplers._prefixes
    kept, reused = len(shared._states), shared.reused
    backend.sample(_preamble_requests(live))
    backend.forward_backward(model_id, sft_batch(7), "cross_entropy", {}, False)
    backend.optim_step(model_id, AdamStep(learning_rate=0.05))
    after = backend.sample(_preamble_requests(live))
    assert (len(shared._states), shared.reused) == (kept, reused)
    snapshot = backend.sample(_preamble_requests(backend.snapshot_for_sampling(model_id)))
    assert [r.sequences[0].logprobs for r in after] == [r.sequences[0].logprobs for r in snapshot]


def test_kept_prefixes_stay_within_their_bytes_and_leave_with_their_sampler():
    from tinker_chief.engine.compute.sampler_pool import _SharedPrefixes

    def states(positions: int) -> list:
        return [
            (torch.zeros(1, 2, positions, 4), torch.zeros(1, 2, positions, 4))
        ]  # 64 B a position

    shared = _SharedPrefixes(max_bytes=64 * 10)
    shared.put("a", (1,), states(4))
    shared.put("b", (2,), states(4))
    shared.put("a", (3,), states(11))  # larger than the whole budget: not kept
    assert shared.get("a", (1,)) is not None  # now the most recently used
    shared.put("b", (4,), states(4))  # over 10 positions: the least recently used, b's (2,), goes
    assert [
        shared.get(*entry) is not None for entry in (("a", (1,)), ("b", (2,)), ("b", (4,)))
    ] == [
        True,
        False,
        True,
    ]
    shared.forget("a")
    assert shared.get("a", (1,)) is None and shared.get("b", (4,)) is not None
