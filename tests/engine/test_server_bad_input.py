"""Bad input gets a 4xx with a specific sentence, and the engine keeps serving.

Through the SDK where the SDK can send the request, else with raw httpx (malformed bodies,
missing fields), against the shared real engine.
"""

from __future__ import annotations

import re

import pytest
import tinker
from tinker import types

from server_support import (
    TINY,
    fb_body,
    raw_http,
    raw_model,
    responses_on_one_connection,
    sft_datum,
)

OUTSIDE_VOCAB = 100_000
PROMPT = types.ModelInput.from_ints([1, 2, 3])
TEMPERATURE_RANGE = "sampling_params.temperature must be 0 (greedy) or in [1e-06, 100]"


@pytest.fixture(scope="module")
def tc(service_client):
    return service_client.create_lora_training_client(base_model=TINY, rank=2, seed=31).result()


def _error(response, status: int) -> str:
    assert response.status_code == status, response.text
    return response.json()["error"]


def test_malformed_protobuf_and_compression(raw, tc):
    model_id = tc.get_info().model_id
    assert "not a valid tinker_public.ForwardBackwardRequest" in _error(
        raw.post("/forward_backward", content=b"\xff\xff\xff garbage"), 400
    )
    assert "not valid zstd" in _error(
        raw.post("/forward_backward", content=b"nope", headers={"Content-Encoding": "zstd"}), 400
    )
    assert "Content-Encoding 'br'" in _error(
        raw.post("/forward_backward", content=b"x", headers={"Content-Encoding": "br"}), 400
    )
    assert "field model_id is missing" in _error(raw.post("/forward_backward", content=b""), 400)
    unknown = raw.post(
        "/forward_backward", content=fb_body("nobody:train:9", 1, [sft_datum([1, 2, 3])])
    )
    assert "unknown model_id 'nobody:train:9'" in _error(unknown, 404)
    custom = raw.post(
        "/forward_backward", content=fb_body(model_id, 0, [sft_datum([1, 2, 3])], loss_fn="custom")
    )
    assert "not supported by the local engine" in _error(custom, 400)


def test_malformed_json_and_missing_fields(raw):
    assert "not valid JSON" in _error(raw.post("/create_model", content=b"{not json"), 400)
    session = raw.post(
        "/create_session", json={"tags": [], "user_metadata": None, "sdk_version": "x"}
    ).json()
    missing = raw.post(
        "/create_model", json={"session_id": session["session_id"], "model_seq_id": 0}
    )
    assert "field base_model is missing" in _error(missing, 400)
    no_lora = raw.post(
        "/create_model",
        json={"session_id": session["session_id"], "model_seq_id": 1, "base_model": TINY},
    )
    assert "lora_config is missing" in _error(no_lora, 400)
    assert "field model_id is missing" in _error(raw.post("/get_info", json={}), 400)
    assert "unknown session" in _error(
        raw.post(
            "/create_model",
            json={
                "session_id": "gone",
                "model_seq_id": 0,
                "base_model": TINY,
                "lora_config": {"rank": 1},
            },
        ),
        404,
    )
    bad_datum = raw.post(
        "/forward_backward",
        content=fb_body(
            raw_model(raw),
            1,
            [
                types.Datum(
                    model_input=types.ModelInput.from_ints([1, 2, 3]),
                    loss_fn_inputs={"target_tokens": [2, 3, 4]},
                )
            ],
        ),
    )
    assert "missing weights" in _error(bad_datum, 400)


def test_unknown_model_lists_available_ones(service_client):
    with pytest.raises(
        tinker.NotFoundError,
        match="unknown model no-such-model: available models are .*tiny-random-llama",
    ):
        service_client.create_lora_training_client(base_model="no-such-model", rank=2).result()
    with pytest.raises(tinker.NotFoundError, match="available models are"):
        service_client.create_sampling_client(base_model="no-such-model").result()


def test_token_ids_outside_vocabulary(tc, service_client):
    with pytest.raises(tinker.BadRequestError, match="token id 100000 is outside the vocabulary"):
        tc.forward([sft_datum([1, 2, OUTSIDE_VOCAB])], "cross_entropy").result()
    sampler = service_client.create_sampling_client(base_model=TINY).result()
    with pytest.raises(tinker.BadRequestError, match="outside the vocabulary"):
        sampler.sample(
            types.ModelInput.from_ints([1, OUTSIDE_VOCAB]), 1, types.SamplingParams(max_tokens=2)
        ).result()


def test_token_ids_past_int64_are_a_400_naming_the_field(raw):
    def sample(tokens: list[int], stop: list[int] | None = None):
        params = {"max_tokens": 1} if stop is None else {"max_tokens": 1, "stop": stop}
        prompt = {"chunks": [{"type": "encoded_text", "tokens": tokens}]}
        body = {"base_model": TINY, "num_samples": 1, "prompt": prompt, "sampling_params": params}
        return raw.post("/asample", json=body)

    expected = "is outside the vocabulary"
    for bad in (2**63, 2**64 + 7, -(2**63) - 1):
        assert _error(sample([1, bad]), 400) == (
            f"asample: prompt: token id {bad} {expected} of {TINY} (expected 0 <= id < 259)"
        )
        assert _error(sample([1, 2], stop=[bad]), 400) == (
            f"asample: sampling_params.stop: token id {bad} {expected} (expected 0 <= id < 259)"
        )
    long_id = _error(sample([1, 10**300]), 400)  # quoted cut short, like any client value
    assert f"token id {str(10**300)[:200]}... is outside the vocabulary" in long_id


def test_an_engine_error_leaves_the_keep_alive_connection_usable(engine, tc, raw):
    """A 500 (here: a checkpoint whose weights file is damaged on disk) answers the request and
    keeps the connection: the next request on the same socket gets its answer."""
    path = tc.save_weights_for_sampler("damaged").result().path
    run_id, _, name = path.removeprefix("tinker://").split("/")
    checkpoint = engine.state_dir / "runs" / run_id / "sampler_weights" / name
    (checkpoint / "adapter_model.safetensors").write_bytes(b"x" * 64)
    new_session = {"tags": [], "user_metadata": None, "sdk_version": "raw"}
    session = raw.post("/create_session", json=new_session).json()
    load = raw_http(
        engine,
        "POST",
        "create_sampling_session",
        {"session_id": session["session_id"], "sampling_session_seq_id": 0, "model_path": path},
    )
    responses = responses_on_one_connection(engine, [load, raw_http(engine, "GET", "healthz")] * 3)
    for failed, next_one in zip(responses[::2], responses[1::2]):
        assert failed.startswith(b"HTTP/1.1 500"), failed[:300]
        assert b"internal engine error" in failed, failed[:300]
        assert next_one.startswith(b"HTTP/1.1 200"), next_one[:300]
        assert next_one.endswith(b'{"status":"ok"}'), next_one[:300]


def test_sequences_over_context_length(tc, service_client):
    with pytest.raises(tinker.BadRequestError, match="exceed the context length"):
        tc.forward([sft_datum([5] * 3000)], "cross_entropy").result()
    sampler = service_client.create_sampling_client(base_model=TINY).result()
    with pytest.raises(tinker.BadRequestError, match="exceed the context length"):
        sampler.sample(
            types.ModelInput.from_ints([5] * 2040), 1, types.SamplingParams(max_tokens=64)
        ).result()


def test_unknown_and_malformed_tinker_paths(service_client, tc):
    run_id = tc.get_info().model_id
    with pytest.raises(tinker.NotFoundError, match="no training run 'nope'"):
        service_client.create_sampling_client(model_path="tinker://nope/sampler_weights/x").result()
    with pytest.raises(tinker.NotFoundError, match=f"checkpoints of run '{run_id}' are"):
        service_client.create_training_client_from_state(
            f"tinker://{run_id}/weights/missing"
        ).result()
    with pytest.raises(tinker.BadRequestError, match="invalid checkpoint name"):
        service_client.create_sampling_client(model_path=f"tinker://{run_id}/weights/..").result()


def test_invalid_checkpoint_names_and_unsupported_options(tc):
    for name in ("../evil", "a/b", "", " spaced"):
        with pytest.raises(tinker.BadRequestError, match="invalid checkpoint name"):
            tc.save_state(name).result()
    with pytest.raises(
        tinker.BadRequestError, match="ttl_seconds must be a whole number of seconds between 3600"
    ):
        tc.save_state("ttl", ttl_seconds=60).result()
    with pytest.raises(
        tinker.BadRequestError,
        match="age_encryption_recipients .* not supported by the local engine",
    ):
        tc.save_weights_external("ext", age_encryption_recipients=["age1qqqq"]).result()


def test_bad_sampling_params(service_client):
    sampler = service_client.create_sampling_client(base_model=TINY).result()
    prompt = types.ModelInput.from_ints([1, 2, 3])
    with pytest.raises(tinker.BadRequestError, match="top_p must be in"):
        sampler.sample(prompt, 1, types.SamplingParams(max_tokens=2, top_p=0)).result()
    with pytest.raises(tinker.BadRequestError, match="temperature must be"):
        sampler.sample(prompt, 1, types.SamplingParams(max_tokens=2, temperature=-1)).result()
    with pytest.raises(
        tinker.BadRequestError, match=r"seed must be between 0 and 18446744073709551615"
    ):
        sampler.sample(prompt, 1, types.SamplingParams(max_tokens=2, seed=2**80)).result()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"temperature": 1e-300}, f"{TEMPERATURE_RANGE}, got 1e-300"),
        ({"temperature": 1e6}, f"{TEMPERATURE_RANGE}, got 1000000.0"),
        ({"top_p": 1e-300}, "sampling_params.top_p must be in [1e-06, 1], got 1e-300"),
    ],
)
def test_sampling_params_outside_sane_ranges_are_refused_up_front(service_client, params, message):
    """Before, these were accepted and then failed inside the engine (a 'probability tensor contains
    inf' internal error); now the request is a 400 naming the field and the range."""
    sampler = service_client.create_sampling_client(base_model=TINY).result()
    with pytest.raises(tinker.BadRequestError, match=re.escape(message)):
        sampler.sample(PROMPT, 1, types.SamplingParams(max_tokens=2, **params)).result()


def test_sampling_at_the_edges_of_the_ranges_works(service_client):
    sampler = service_client.create_sampling_client(base_model=TINY).result()
    for params in ({"temperature": 1e-6}, {"top_p": 1e-6}, {"temperature": 100.0, "top_p": 1e-6}):
        settings = types.SamplingParams(max_tokens=3, seed=1, **params)
        result = sampler.sample(PROMPT, 2, settings).result()
        assert [len(sequence.tokens) for sequence in result.sequences] == [3, 3]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"learning_rate": 1e30}, "adam_params.learning_rate must be between 0 and 1, got 1e+30"),
        ({"learning_rate": -1e-3}, "adam_params.learning_rate must be between 0 and 1, got -0.001"),
        ({"beta1": 1.0}, "adam_params.beta1 must be in [0, 1), got 1.0"),
        ({"beta2": -0.1}, "adam_params.beta2 must be in [0, 1), got -0.1"),
        ({"eps": 0.0}, "adam_params.eps must be in (0, 1], got 0.0"),
        ({"weight_decay": 5.0}, "adam_params.weight_decay must be between 0 and 1, got 5.0"),
        ({"grad_clip_norm": -1.0}, "adam_params.grad_clip_norm must be a finite number >= 0"),
    ],
)
def test_adam_params_outside_their_ranges_are_a_400_naming_the_field(tc, params, message):
    with pytest.raises(tinker.BadRequestError, match=re.escape(f"optim_step: {message}")):
        tc.optim_step(types.AdamParams(**{"learning_rate": 1e-3, **params})).result()
    tc.forward_backward([sft_datum([1, 2, 3, 4])], "cross_entropy").result()  # the sequence goes on
    step = tc.optim_step(types.AdamParams(learning_rate=1e-3)).result()
    assert step.metrics["learning_rate:mean"] == 1e-3


def test_prompt_logprobs_last_n_out_of_range(raw):
    body = {
        "base_model": TINY,
        "num_samples": 1,
        "prompt_logprobs": True,
        "sampling_params": {"max_tokens": 1},
        "prompt": {"chunks": [{"type": "encoded_text", "tokens": [1, 2, 3, 4, 5]}]},
    }
    for last_n in (-5, 0, 5):  # the SDK refuses < 1 client-side; raw clients reach the engine
        message = _error(raw.post("/asample", json={**body, "prompt_logprobs_last_n": last_n}), 400)
        assert (
            f"prompt_logprobs_last_n must be between 1 and the prompt length - 1 (4), got {last_n}"
            in message
        )


def test_deeply_nested_json_is_a_400_without_a_traceback(raw, engine):
    log_before = engine.log_file.read_text().count("Traceback")
    deep = b"[" * 100_000 + b"]" * 100_000
    for route in (
        "/get_info",
        "/session_heartbeat",
        "/optim_step",
        "/copy_weights",
        "/create_model",
    ):
        assert raw.post(route, content=deep).status_code == 400, route
    assert engine.log_file.read_text().count("Traceback") == log_before


def test_engine_keeps_serving_after_bad_input(raw, tc):
    assert raw.get("/healthz").json() == {"status": "ok"}
    output = tc.forward([sft_datum([1, 2, 3, 4])], "cross_entropy").result()
    assert "loss:sum" in output.metrics
    assert "not an endpoint of the local engine" in _error(raw.get("/no/such/route"), 404)
