"""What SDK 0.38 sends beyond the basics: inflight samplers, SDK headers, the client/config
handshake, create_session bodies, the gspo loss and optimizer choices at load time."""

from __future__ import annotations

import numpy as np
import pytest
import tinker
from tinker import types
from tinker._version import __version__ as sdk_version

from server_support import TEXTS, TINY, logprobs_of, sft_datum


def _prompt_logprobs(sampler: tinker.SamplingClient, tokens: list[int]) -> np.ndarray:
    return np.asarray(
        sampler.compute_logprobs(types.ModelInput.from_ints(tokens)).result()[1:], dtype=np.float64
    )


def _train_step(tc, data) -> None:
    tc.forward_backward(data, "cross_entropy")
    tc.optim_step(types.AdamParams(learning_rate=0.05)).result()


def test_inflight_sampler_follows_the_training_weights(service_client, tokenizer):
    tc = service_client.create_lora_training_client(base_model=TINY, rank=4, seed=41).result()
    tokens = tokenizer.encode(TEXTS[0])
    data = [sft_datum(tokens)]
    inflight = tc.save_weights_and_get_sampling_client(kind="inflight").result()
    snapshot = tc.save_weights_and_get_sampling_client().result()
    initial = _prompt_logprobs(snapshot, tokens)
    np.testing.assert_allclose(_prompt_logprobs(inflight, tokens), initial, atol=1e-5)

    _train_step(tc, data)
    trained = logprobs_of(tc.forward(data, "cross_entropy").result())[0]
    assert not np.allclose(trained, initial, atol=1e-3), "the step must move the weights"
    np.testing.assert_allclose(_prompt_logprobs(inflight, tokens), trained, atol=1e-4)  # follows
    np.testing.assert_allclose(_prompt_logprobs(snapshot, tokens), initial, atol=1e-5)  # stays

    _train_step(tc, data)  # sampling from the training adapter leaves it trainable
    again = logprobs_of(tc.forward(data, "cross_entropy").result())[0]
    assert not np.allclose(again, trained, atol=1e-3)
    np.testing.assert_allclose(_prompt_logprobs(inflight, tokens), again, atol=1e-4)


def test_sdk_version_and_method_headers_are_counted(service_client, raw):
    tc = service_client.create_lora_training_client(base_model=TINY, rank=2, seed=42).result()
    before = raw.get("/engine_stats").json()
    tc.save_state("headers").result()
    after = raw.get("/engine_stats").json()
    method = "TrainingClient.save_state"
    saved = after["sdk_methods"][method] - before["sdk_methods"].get(method, 0)
    assert saved >= 1  # the save request, plus its result polls
    assert after["sdk_methods"]["ServiceClient.create_lora_training_client"] >= 1
    assert after["sdk_versions"][sdk_version] > before["sdk_versions"].get(sdk_version, 0)


def test_client_config_checks_the_sdk_version(raw):
    ok = raw.post("/client/config", json={"sdk_version": sdk_version})
    assert ok.status_code == 200 and ok.json()["proto_compress_fwdbwd"] is True
    # the SDK then talks through httpx's transport: pyqwest's aborted client processes at exit
    assert ok.json()["use_pyqwest_transport"] is False
    old = raw.post("/client/config", json={"sdk_version": "0.20.1"})
    assert old.status_code == 400
    assert (
        "tinker SDK 0.20.1 is too old for the local engine, which needs tinker >= 0.25"
        in old.json()["error"]
    )
    missing = raw.post("/client/config", json={})
    assert missing.status_code == 400 and "field sdk_version is missing" in missing.json()["error"]
    assert raw.post("/client/dynamic_config", content=b"{not json").status_code == 400


def test_create_session_validates_its_body(raw):
    broken = raw.post(
        "/create_session", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert (
        broken.status_code == 400
        and "create_session: body is not valid JSON" in broken.json()["error"]
    )
    wrong = raw.post(
        "/create_session", json={"tags": "nlp", "user_metadata": None, "sdk_version": sdk_version}
    )
    assert wrong.status_code == 400 and "field tags" in wrong.json()["error"]
    missing = raw.post("/create_session", json={"tags": []})
    assert missing.status_code == 400 and "field sdk_version is missing" in missing.json()["error"]
    full = raw.post(
        "/create_session",
        json={
            "tags": ["a"],
            "user_metadata": {"k": 1},
            "sdk_version": sdk_version,
            "project_id": "p",
            "display_name": "d",
            "type": "create_session",
        },
    )
    assert full.status_code == 200 and full.json()["session_id"]


def _policy_datum(
    tokens: list[int], sampler_logprobs: np.ndarray, advantages: np.ndarray
) -> types.Datum:
    n = len(tokens) - 1
    return types.Datum(
        model_input=types.ModelInput.from_ints(tokens[:-1]),
        loss_fn_inputs={
            "target_tokens": np.asarray(tokens[1:], np.int64),
            "logprobs": sampler_logprobs.astype(np.float32),
            "advantages": advantages.astype(np.float32),
            "sequence_ratio_mask": (np.arange(n) >= n // 2).astype(np.float32),
        },
    )  # the "completion"


def test_gspo_through_the_sdk(service_client, tokenizer):
    tc = service_client.create_lora_training_client(base_model=TINY, rank=2, seed=43).result()
    rng = np.random.default_rng(5)
    sequences = [tokenizer.encode(text) for text in TEXTS[:2]]
    advantages = [rng.normal(0, 1, len(t) - 1) for t in sequences]
    probe = [_policy_datum(t, np.zeros(len(t) - 1), a) for t, a in zip(sequences, advantages)]
    current = logprobs_of(tc.forward(probe, "importance_sampling").result())
    sampler = [lp + rng.uniform(-0.3, 0.3, lp.shape) for lp in current]  # a little off the model's
    data = [_policy_datum(t, s, a) for t, s, a in zip(sequences, sampler, advantages)]

    config = {"clip_low_threshold": 0.9, "clip_high_threshold": 1.1}
    result = tc.forward_backward(data, "gspo", loss_fn_config=config).result()
    expected = 0.0
    for datum, lp in zip(data, logprobs_of(result)):
        inputs = {k: np.asarray(v.to_numpy(), np.float64) for k, v in datum.loss_fn_inputs.items()}
        marked = inputs["sequence_ratio_mask"] != 0
        seq = np.exp((lp - inputs["logprobs"])[marked].mean())
        adv = inputs["advantages"]
        expected += float(-np.minimum(seq * adv, np.clip(seq, 0.9, 1.1) * adv).sum())
    assert result.metrics["loss:sum"] == pytest.approx(expected, rel=1e-4, abs=1e-4)
    assert (
        tc.optim_step(types.AdamParams(learning_rate=0.01)).result().metrics["grad_norm:mean"] > 0
    )


def test_load_weights_refuses_an_optimizer_it_cannot_run(service_client):
    tc = service_client.create_lora_training_client(base_model=TINY, rank=2, seed=44).result()
    path = tc.save_state("optimizer-choice").result().path
    with pytest.raises(
        tinker.BadRequestError, match="optimizer 'dimuon' .only adamw. is not supported"
    ):
        service_client.create_training_client_from_state(
            path, optimizer=types.DimuonOptimizerConfig()
        ).result()
    adam = service_client.create_training_client_from_state(
        path, optimizer=types.AdamOptimizerConfig()
    ).result()
    assert adam.get_info().model_data.model_name == TINY
