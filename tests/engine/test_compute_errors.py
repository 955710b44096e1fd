"""Bad requests to TorchBackend raise InvalidRequestError/NotFoundError with specific sentences,
and the backend keeps working afterwards."""

from __future__ import annotations

import numpy as np
import pytest

from tinker_chief.engine.backend import (
    AdamStep,
    ConflictError,
    DatumArrays,
    InvalidRequestError,
    LoraSettings,
    NotFoundError,
    SampleRequest,
    SamplingSettings,
)

from compute_support import TINY_MODEL, VOCAB, backend_with_model, fresh_id, sft_batch, sft_datum


@pytest.fixture(scope="module")
def backend_and_model():
    return backend_with_model(rank=2)


def datum(tokens, targets=None, weights=None) -> DatumArrays:
    tokens = np.asarray(tokens, dtype=np.int64)
    targets = np.asarray(targets if targets is not None else tokens, dtype=np.int64)
    weights = np.asarray(weights if weights is not None else np.ones(len(tokens)), dtype=np.float32)
    return DatumArrays(tokens, {"target_tokens": targets, "weights": weights})


FORWARD_CASES = [
    (
        [datum([1, 2, 3])],
        "mystery",
        {},
        r"unsupported loss_fn 'mystery'.*cross_entropy, importance_sampling, ppo, "
        r"cispo, dro",
    ),
    (
        [DatumArrays(np.array([1, 2]), {"target_tokens": np.array([2, 3])})],
        "cross_entropy",
        {},
        r"datum 0: loss_fn_inputs is missing 'weights'",
    ),
    (
        [datum([1, 2]), datum([1, 2])],
        "importance_sampling",
        {},
        r"datum 0: loss_fn_inputs is missing 'logprobs'",
    ),
    (
        [datum([1, VOCAB, 3])],
        "cross_entropy",
        {},
        rf"datum 0: model_input: token id {VOCAB} at position 1 is outside "
        rf"the vocabulary \(valid ids are 0..{VOCAB - 1}\)",
    ),
    (
        [datum([1, 2]), datum([1, 2], targets=[-1, 2])],
        "cross_entropy",
        {},
        r"datum 1: target_tokens: token id -1 at position 0",
    ),
    (
        [datum(np.ones(2049))],
        "cross_entropy",
        {},
        r"length 2049 exceeds the model's maximum context length 2048",
    ),
    (
        [datum([1, 2, 3], weights=[1.0, 1.0])],
        "cross_entropy",
        {},
        r"loss_fn_inputs\['weights'\] has shape \[2\], expected \[3\]",
    ),
    ([datum([])], "cross_entropy", {}, r"datum 0: model_input must be a non-empty list"),
    ([], "cross_entropy", {}, r"the request has no data"),
]


@pytest.mark.parametrize(("data", "loss", "config", "message"), FORWARD_CASES)
def test_bad_forward_backward_requests(backend_and_model, data, loss, config, message):
    backend, model_id = backend_and_model
    with pytest.raises(InvalidRequestError, match=message):
        backend.forward_backward(model_id, data, loss, config, False)


def test_dro_needs_beta(backend_and_model):
    backend, model_id = backend_and_model
    rng = np.random.default_rng(0)
    item = sft_datum(
        rng, 4, {"logprobs": np.zeros(4, np.float32), "advantages": np.ones(4, np.float32)}
    )
    with pytest.raises(InvalidRequestError, match=r"loss_fn_config must set 'beta'"):
        backend.forward_backward(model_id, [item], "dro", {}, True)


def test_a_rejected_request_leaves_no_partial_gradient(backend_and_model):
    backend, model_id = backend_and_model
    with pytest.raises(InvalidRequestError):
        backend.forward_backward(
            model_id, [*sft_batch(1), datum([1, VOCAB])], "cross_entropy", {}, False
        )
    assert backend.optim_step(model_id, AdamStep(learning_rate=0.1))["grad_norm:mean"] == 0.0


def test_model_lifecycle_errors(backend_and_model):
    backend, model_id = backend_and_model
    with pytest.raises(NotFoundError, match="unknown model_id 'ghost'"):
        backend.forward_backward("ghost", sft_batch(0), "cross_entropy", {}, True)
    with pytest.raises(ConflictError, match="already exists"):
        backend.create_training_model(model_id, TINY_MODEL, LoraSettings(rank=2))
    with pytest.raises(
        NotFoundError,
        match=r"unknown model no-such-model: available models are .*tiny-random-llama",
    ):
        backend.create_training_model(fresh_id(), "no-such-model", LoraSettings(rank=2))
    with pytest.raises(InvalidRequestError, match="rank must be a positive integer"):
        backend.create_training_model(fresh_id(), TINY_MODEL, LoraSettings(rank=0))
    with pytest.raises(InvalidRequestError, match="at least one of train_mlp and train_attn"):
        backend.create_training_model(
            fresh_id(), TINY_MODEL, LoraSettings(rank=2, train_mlp=False, train_attn=False)
        )
    out_of_range = r"adam_params.learning_rate must be between 0 and 1, got -1.0"
    with pytest.raises(InvalidRequestError, match=out_of_range):
        backend.optim_step(model_id, AdamStep(learning_rate=-1.0))


def test_checkpoint_errors(backend_and_model, tmp_path):
    backend, model_id = backend_and_model
    with pytest.raises(NotFoundError, match="not an adapter checkpoint"):
        backend.load_training_state(fresh_id(), tmp_path, with_optimizer=False)
    backend.save_sampler_weights(model_id, tmp_path / "weights-only")
    with pytest.raises(InvalidRequestError, match="has no optimizer state"):
        backend.load_training_state(fresh_id(), tmp_path / "weights-only", with_optimizer=True)


SAMPLE_CASES = [
    (dict(prompt=()), r"the prompt is empty"),
    (dict(prompt=(1, VOCAB + 5)), rf"prompt token id {VOCAB + 5} is outside the vocabulary"),
    (
        dict(prompt=tuple([1] * 2040), max_tokens=16),
        r"prompt length 2040 \+ max_tokens 16 exceeds .* 2048",
    ),
    (dict(num_samples=0), r"num_samples must be at least 1"),
    (dict(temperature=-0.5), r"temperature must be >= 0"),
    (dict(top_p=0.0), r"top_p must be in \(0, 1\]"),
]


@pytest.mark.parametrize(("overrides", "message"), SAMPLE_CASES)
def test_bad_sample_requests(backend_and_model, overrides, message):
    backend, _ = backend_and_model
    settings = {
        k: overrides.pop(k) for k in ("max_tokens", "temperature", "top_p") if k in overrides
    }
    settings.setdefault("max_tokens", 4)
    fields = dict(sampler=TINY_MODEL, prompt=(1, 2, 3), num_samples=1) | overrides
    bad = SampleRequest(settings=SamplingSettings(**settings), **fields)
    good = SampleRequest(TINY_MODEL, (1, 2), 1, SamplingSettings(max_tokens=2, temperature=0.0))
    with pytest.raises(InvalidRequestError, match=message):
        backend.sample([good, bad])
    assert len(backend.sample([good])[0].sequences[0].tokens) == 2  # still serving
