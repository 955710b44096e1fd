"""Sampling through the real SDK: parameters, stops, seeds, prompt logprobs, batching."""

from __future__ import annotations

import concurrent.futures

import pytest
from tinker import types

from server_support import TINY, sft_datum


@pytest.fixture(scope="module")
def base_sampler(service_client):
    return service_client.create_sampling_client(base_model=TINY).result()


@pytest.fixture(scope="module")
def prompt(tokenizer):
    return types.ModelInput.from_ints(tokenizer.encode("once upon a time"))


def _sample(sampler, prompt, n=1, **params):
    return sampler.sample(prompt, n, types.SamplingParams(**params)).result()


def test_num_samples_and_sequence_ids(base_sampler, prompt):
    response = _sample(base_sampler, prompt, n=3, max_tokens=4, seed=1, stop=[])
    assert len(response.sequences) == 3
    assert len({s.sequence_id for s in response.sequences}) == 3
    assert all(len(s.tokens) == 4 and len(s.logprobs) == 4 for s in response.sequences)


def test_greedy_is_deterministic_and_seed_reproduces(base_sampler, prompt):
    greedy = [
        _sample(base_sampler, prompt, max_tokens=6, temperature=0, stop=[]).sequences[0].tokens
        for _ in range(2)
    ]
    assert greedy[0] == greedy[1]
    seeded = [
        _sample(base_sampler, prompt, max_tokens=6, temperature=1.0, seed=42, stop=[])
        .sequences[0]
        .tokens
        for _ in range(2)
    ]
    assert seeded[0] == seeded[1]
    others = {
        tuple(
            _sample(base_sampler, prompt, max_tokens=6, temperature=1.0, seed=s, stop=[])
            .sequences[0]
            .tokens
        )
        for s in range(5)
    }
    assert len(others) > 1


def test_stop_tokens_and_stop_strings(base_sampler, prompt, tokenizer):
    free = _sample(base_sampler, prompt, max_tokens=12, temperature=0, stop=[]).sequences[0]
    stop_token = free.tokens[3]
    first = free.tokens.index(stop_token)
    stopped = _sample(
        base_sampler, prompt, max_tokens=12, temperature=0, stop=[stop_token]
    ).sequences[0]
    assert stopped.stop_reason == "stop" and stopped.tokens == free.tokens[: first + 1]

    text = tokenizer.decode(free.tokens)
    stop_text = text[len(text) // 2 : len(text) // 2 + 2]
    by_string = _sample(
        base_sampler, prompt, max_tokens=12, temperature=0, stop=[stop_text]
    ).sequences[0]
    assert by_string.stop_reason == "stop"
    assert stop_text in tokenizer.decode(by_string.tokens)
    assert len(by_string.tokens) < len(free.tokens)


def test_default_max_tokens_when_none(base_sampler, prompt):
    response = _sample(base_sampler, prompt, max_tokens=None, temperature=0, stop=[])
    assert len(response.sequences[0].tokens) == 128  # the engine's default instead of a refusal
    near_limit = types.ModelInput.from_ints([5] * 2040)  # tiny-random-llama's context is 2048
    clipped = _sample(base_sampler, near_limit, max_tokens=None, temperature=0, stop=[])
    assert len(clipped.sequences[0].tokens) == 8  # the default shrinks to what still fits


def test_prompt_logprobs_and_topk(base_sampler, prompt):
    response = base_sampler.sample(
        prompt,
        1,
        types.SamplingParams(max_tokens=1),
        include_prompt_logprobs=True,
        topk_prompt_logprobs=3,
    ).result()
    lps, topk = response.prompt_logprobs, response.topk_prompt_logprobs
    assert lps[0] is None and len(lps) == prompt.length
    assert all(lp is not None and lp <= 0 for lp in lps[1:])
    assert len(topk) == prompt.length
    tokens = prompt.to_ints()
    for position in range(1, prompt.length):
        row = topk[position]
        assert len(row) == 3 and row[0][1] >= row[1][1] >= row[2][1]
        assert (
            row[0][1] >= lps[position] - 1e-5
        )  # the best alternative is at least the actual token
        if tokens[position] == row[0][0]:
            assert row[0][1] == pytest.approx(lps[position], abs=1e-4)


def test_concurrent_requests_are_batched_and_match_sequential(base_sampler, prompt, raw):
    params = dict(max_tokens=8, temperature=0, stop=[])
    sequential = _sample(base_sampler, prompt, **params).sequences[0].tokens
    before = raw.get("/engine_stats").json()
    assert (before["device"], before["precision"]) == (
        "cpu",
        "float32",
    )  # as the fixture started it
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: _sample(base_sampler, prompt, **params), range(8)))
    after = raw.get("/engine_stats").json()
    assert all(r.sequences[0].tokens == sequential for r in results)
    requests = after["sample_requests"] - before["sample_requests"]
    batches = after["sample_batches"] - before["sample_batches"]
    assert requests == 8 and batches < requests
    assert after["largest_sample_batch"] > 1


def test_sampling_from_saved_checkpoint_matches_ephemeral_snapshot(service_client, prompt):
    tc = service_client.create_lora_training_client(base_model=TINY, rank=4, seed=9).result()
    datum = types.Datum(
        model_input=prompt,
        loss_fn_inputs={
            "target_tokens": prompt.to_ints()[1:] + [5],
            "weights": [1.0] * prompt.length,
        },
    )
    tc.forward_backward([datum], "cross_entropy")
    tc.optim_step(types.AdamParams(learning_rate=0.1)).result()
    path = tc.save_weights_for_sampler("after-one-step").result().path
    assert path.endswith("/sampler_weights/after-one-step")
    saved = service_client.create_sampling_client(model_path=path).result()
    snapshot = tc.save_weights_and_get_sampling_client().result()
    a = saved.compute_logprobs(prompt).result()
    b = snapshot.compute_logprobs(prompt).result()
    assert a[1:] == pytest.approx(b[1:], abs=1e-5)
    base = (
        service_client.create_sampling_client(base_model=TINY)
        .result()
        .compute_logprobs(prompt)
        .result()
    )
    assert a[1:] != pytest.approx(base[1:], abs=1e-4)  # the trained adapter is really applied


def test_checkpoint_sampler_survives_eviction_from_the_backend_cache(service_client, prompt):
    """The backend keeps at most 32 adapter samplers; many snapshots must not break older
    clients."""
    tc = service_client.create_lora_training_client(base_model=TINY, rank=2, seed=10).result()
    path = tc.save_weights_for_sampler("evictable").result().path
    saved = service_client.create_sampling_client(model_path=path).result()
    expected = saved.compute_logprobs(prompt).result()
    for _ in range(34):  # each ephemeral snapshot takes a cache slot
        tc.save_weights_and_get_sampling_client().result()
    assert saved.compute_logprobs(prompt).result()[1:] == pytest.approx(expected[1:], abs=1e-6)


def test_ephemeral_sampler_survives_eviction_from_the_backend_cache(service_client, prompt):
    """A `save_weights_and_get_sampling_client` sampler exists only in the engine's memory; after
    more snapshots than the backend caches, it is loaded back from its spill and still answers."""
    tc = service_client.create_lora_training_client(base_model=TINY, rank=2, seed=11).result()
    datum = sft_datum(prompt.to_ints() + [5])
    tc.forward_backward([datum], "cross_entropy")
    tc.optim_step(types.AdamParams(learning_rate=0.1)).result()
    first = tc.save_weights_and_get_sampling_client().result()
    expected = first.compute_logprobs(prompt).result()
    tc.forward_backward([datum], "cross_entropy")
    tc.optim_step(
        types.AdamParams(learning_rate=0.1)
    ).result()  # later snapshots differ from the first
    for _ in range(34):
        latest = tc.save_weights_and_get_sampling_client().result()
    assert latest.compute_logprobs(prompt).result()[1:] != pytest.approx(expected[1:], abs=1e-4)
    assert first.compute_logprobs(prompt).result()[1:] == pytest.approx(expected[1:], abs=1e-6)


def test_a_checkpoint_saved_again_under_its_name_is_sampled_with_its_new_weights(
    service_client,
    rest_client,
    prompt,
):
    """The engine caches loaded checkpoints by path; a checkpoint saved again under the same name
    (deleted and saved anew, or save_state with overwrite) must be sampled with the new weights,
    by new sampling clients and by those created before it changed."""
    tc = service_client.create_lora_training_client(base_model=TINY, rank=2, seed=12).result()
    datum = sft_datum(prompt.to_ints() + [5])

    def train_then_logprobs() -> list[float]:
        tc.forward_backward([datum], "cross_entropy")
        tc.optim_step(types.AdamParams(learning_rate=0.1)).result()
        snapshot = tc.save_weights_and_get_sampling_client().result()
        return snapshot.compute_logprobs(prompt).result()[1:]

    first = train_then_logprobs()
    sampler_path = tc.save_weights_for_sampler("same-name").result().path
    state_path = tc.save_state("same-state").result().path
    paths = (sampler_path, state_path)
    loading = {path: service_client.create_sampling_client(model_path=path) for path in paths}
    before = {path: future.result() for path, future in loading.items()}
    for old in before.values():
        assert old.compute_logprobs(prompt).result()[1:] == pytest.approx(first, abs=1e-5)

    second = train_then_logprobs()
    assert second != pytest.approx(first, abs=1e-4)
    rest_client.delete_checkpoint_from_tinker_path(sampler_path).result()
    assert tc.save_weights_for_sampler("same-name").result().path == sampler_path
    assert tc.save_state("same-state", overwrite=True).result().path == state_path
    for path, old in before.items():
        new = service_client.create_sampling_client(model_path=path).result()
        assert new.compute_logprobs(prompt).result()[1:] == pytest.approx(second, abs=1e-5), path
        assert old.compute_logprobs(prompt).result()[1:] == pytest.approx(second, abs=1e-5), path
