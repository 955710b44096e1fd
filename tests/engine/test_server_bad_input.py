"""Bad input gets a 4xx with a specific sentence, and the engine keeps serving.

Through the SDK where the SDK can send the request, else with raw httpx (malformed bodies,
missing fields), against the shared real engine.
"""

from __future__ import annotations

import pytest
import tinker
from tinker import types

from server_support import TINY, fb_body, raw_model, sft_datum

OUTSIDE_VOCAB = 100_000


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
    unknown = raw.post("/forward_backward", content=fb_body("nobody:train:9", 1, [sft_datum([1, 2, 3])]))
    assert "unknown model_id 'nobody:train:9'" in _error(unknown, 404)
    custom = raw.post("/forward_backward", content=fb_body(model_id, 0, [sft_datum([1, 2, 3])], loss_fn="custom"))
    assert "not supported by the local engine" in _error(custom, 400)


def test_malformed_json_and_missing_fields(raw):
    assert "not valid JSON" in _error(raw.post("/create_model", content=b"{not json"), 400)
    session = raw.post("/create_session", json={"tags": [], "user_metadata": None, "sdk_version": "x"}).json()
    missing = raw.post("/create_model", json={"session_id": session["session_id"], "model_seq_id": 0})
    assert "field base_model is missing" in _error(missing, 400)
    no_lora = raw.post(
        "/create_model", json={"session_id": session["session_id"], "model_seq_id": 1, "base_model": TINY}
    )
    assert "lora_config is missing" in _error(no_lora, 400)
    assert "field model_id is missing" in _error(raw.post("/get_info", json={}), 400)
    assert "unknown session" in _error(
        raw.post(
            "/create_model",
            json={"session_id": "gone", "model_seq_id": 0, "base_model": TINY, "lora_config": {"rank": 1}},
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
                    model_input=types.ModelInput.from_ints([1, 2, 3]), loss_fn_inputs={"target_tokens": [2, 3, 4]}
                )
            ],
        ),
    )
    assert "missing weights" in _error(bad_datum, 400)


def test_unknown_model_lists_available_ones(service_client):
    with pytest.raises(
        tinker.NotFoundError, match="unknown model no-such-model: available models are .*tiny-random-llama"
    ):
        service_client.create_lora_training_client(base_model="no-such-model", rank=2).result()
    with pytest.raises(tinker.NotFoundError, match="available models are"):
        service_client.create_sampling_client(base_model="no-such-model").result()


def test_token_ids_outside_vocabulary(tc, service_client):
    with pytest.raises(tinker.BadRequestError, match="token id 100000 is outside the vocabulary"):
        tc.forward([sft_datum([1, 2, OUTSIDE_VOCAB])], "cross_entropy").result()
    sampler = service_client.create_sampling_client(base_model=TINY).result()
    with pytest.raises(tinker.BadRequestError, match="outside the vocabulary"):
        sampler.sample(types.ModelInput.from_ints([1, OUTSIDE_VOCAB]), 1, types.SamplingParams(max_tokens=2)).result()


def test_sequences_over_context_length(tc, service_client):
    with pytest.raises(tinker.BadRequestError, match="exceed the context length"):
        tc.forward([sft_datum([5] * 3000)], "cross_entropy").result()
    sampler = service_client.create_sampling_client(base_model=TINY).result()
    with pytest.raises(tinker.BadRequestError, match="exceed the context length"):
        sampler.sample(types.ModelInput.from_ints([5] * 2040), 1, types.SamplingParams(max_tokens=64)).result()


def test_unknown_and_malformed_tinker_paths(service_client, tc):
    run_id = tc.get_info().model_id
    with pytest.raises(tinker.NotFoundError, match="no training run 'nope'"):
        service_client.create_sampling_client(model_path="tinker://nope/sampler_weights/x").result()
    with pytest.raises(tinker.NotFoundError, match=f"checkpoints of run '{run_id}' are"):
        service_client.create_training_client_from_state(f"tinker://{run_id}/weights/missing").result()
    with pytest.raises(tinker.BadRequestError, match="invalid checkpoint name"):
        service_client.create_sampling_client(model_path=f"tinker://{run_id}/weights/..").result()


def test_invalid_checkpoint_names_and_unsupported_options(tc):
    for name in ("../evil", "a/b", "", " spaced"):
        with pytest.raises(tinker.BadRequestError, match="invalid checkpoint name"):
            tc.save_state(name).result()
    with pytest.raises(tinker.BadRequestError, match="ttl_seconds must be a whole number of seconds between 3600"):
        tc.save_state("ttl", ttl_seconds=60).result()
    with pytest.raises(tinker.BadRequestError, match="age_encryption_recipients .* not supported by the local engine"):
        tc.save_weights_external("ext", age_encryption_recipients=["age1qqqq"]).result()


def test_bad_sampling_params(service_client):
    sampler = service_client.create_sampling_client(base_model=TINY).result()
    prompt = types.ModelInput.from_ints([1, 2, 3])
    with pytest.raises(tinker.BadRequestError, match="top_p must be in"):
        sampler.sample(prompt, 1, types.SamplingParams(max_tokens=2, top_p=0)).result()
    with pytest.raises(tinker.BadRequestError, match="temperature must be"):
        sampler.sample(prompt, 1, types.SamplingParams(max_tokens=2, temperature=-1)).result()
    with pytest.raises(tinker.BadRequestError, match=r"seed must be between 0 and 18446744073709551615"):
        sampler.sample(prompt, 1, types.SamplingParams(max_tokens=2, seed=2**80)).result()


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
        assert f"prompt_logprobs_last_n must be between 1 and the prompt length - 1 (4), got {last_n}" in message


def test_deeply_nested_json_is_a_400_without_a_traceback(raw, engine):
    log_before = engine.log_file.read_text().count("Traceback")
    deep = b"[" * 100_000 + b"]" * 100_000
    for route in ("/get_info", "/session_heartbeat", "/optim_step", "/copy_weights", "/create_model"):
        assert raw.post(route, content=deep).status_code == 400, route
    assert engine.log_file.read_text().count("Traceback") == log_before


def test_engine_keeps_serving_after_bad_input(raw, tc):
    assert raw.get("/healthz").json() == {"status": "ok"}
    output = tc.forward([sft_datum([1, 2, 3, 4])], "cross_entropy").result()
    assert "loss:sum" in output.metrics
    assert "not an endpoint of the local engine" in _error(raw.get("/no/such/route"), 404)
