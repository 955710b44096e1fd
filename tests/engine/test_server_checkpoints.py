"""Checkpoints through the SDK: save/restart/resume equals an uninterrupted run; REST listings."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tinker
from tinker import types

from server_support import TEXTS, TINY, logprobs_of, sft_datum


def _client(engine) -> tinker.ServiceClient:
    return tinker.ServiceClient(base_url=engine.base_url, api_key=engine.api_key_for_clients)


def _step(tc, data) -> None:
    tc.forward_backward(data, "cross_entropy")
    tc.optim_step(types.AdamParams(learning_rate=0.02, weight_decay=0.01)).result()


def test_resume_after_restart_equals_uninterrupted_run(tmp_path, tokenizer):
    from tinker_chief.engine.server.launcher import start_engine

    data = [sft_datum(tokenizer.encode(text)) for text in TEXTS]
    state = tmp_path / "state"
    with start_engine(state_dir=state, device="cpu", dtype="float32") as first:
        client = _client(first)
        tc = client.create_lora_training_client(base_model=TINY, rank=4, seed=21).result()
        for _ in range(2):
            _step(tc, data)
        state_path = tc.save_state("mid").result().path
        sampler_path = tc.save_weights_for_sampler("mid").result().path
        for _ in range(2):
            _step(tc, data)
        uninterrupted = logprobs_of(tc.forward(data, "cross_entropy").result())
        sampled_before = (
            client.create_sampling_client(model_path=sampler_path)
            .result()
            .sample(
                data[0].model_input, 1, types.SamplingParams(max_tokens=5, temperature=0, stop=[])
            )
            .result()
        )
        client.close("success").result()

    with start_engine(state_dir=state, device="cpu", dtype="float32") as second:
        client = _client(second)
        rest = tinker.RestClient(base_url=second.base_url, api_key=second.api_key_for_clients)
        run_id = state_path.split("/")[2]
        listed = {c.tinker_path for c in rest.list_checkpoints(run_id).result().checkpoints}
        assert listed == {state_path, sampler_path}

        resumed = client.create_training_client_from_state_with_optimizer(state_path).result()
        assert resumed.get_info().model_data.model_name == TINY
        for _ in range(2):
            _step(resumed, data)
        continued = logprobs_of(resumed.forward(data, "cross_entropy").result())
        for a, b in zip(continued, uninterrupted, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)

        weights_only = client.create_training_client_from_state(state_path).result()
        _step(weights_only, data)  # fresh Adam moments: a different trajectory than the resumed one
        diverged = logprobs_of(weights_only.forward(data, "cross_entropy").result())
        after_three = logprobs_of(
            client.create_training_client_from_state_with_optimizer(state_path)
            .result()
            .forward(data, "cross_entropy")
            .result()
        )
        assert not np.allclose(diverged[0], after_three[0], atol=1e-6)

        sampled_after = (
            client.create_sampling_client(model_path=sampler_path)
            .result()
            .sample(
                data[0].model_input, 1, types.SamplingParams(max_tokens=5, temperature=0, stop=[])
            )
            .result()
        )
        assert sampled_after.sequences[0].tokens == sampled_before.sequences[0].tokens
        client.close("success").result()


def test_checkpoints_are_peft_adapter_dirs_with_metadata(
    service_client, engine, tokenizer, tmp_path
):
    tc = service_client.create_lora_training_client(base_model=TINY, rank=2, seed=22).result()
    path = tc.save_state("peft-check", user_metadata={"note": "x"}).result().path
    run_id, _, name = path.removeprefix("tinker://").split("/")
    state_dir = engine.log_file.parent
    directory = state_dir / "runs" / run_id / "weights" / name
    assert (directory / "adapter_config.json").is_file() and (
        directory / "adapter_model.safetensors"
    ).is_file()
    meta = json.loads((directory.parent / f"{name}.json").read_text())
    assert meta["run_id"] == run_id and meta["user_metadata"] == {"note": "x"}
    run = json.loads((state_dir / "runs" / run_id / "run.json").read_text())
    assert run["base_model"] == TINY and run["lora"]["rank"] == 2

    from peft import PeftConfig

    assert PeftConfig.from_pretrained(str(directory)).r == 2


def test_existing_name_conflicts_unless_overwrite(service_client):
    tc = service_client.create_lora_training_client(base_model=TINY, rank=2, seed=23).result()
    first = tc.save_state("same").result().path
    with pytest.raises(tinker.RequestFailedError, match="already exists.*overwrite=True"):
        tc.save_state("same").result()
    assert tc.save_state("same", overwrite=True).result().path == first
    tc.save_weights_for_sampler("s").result()
    with pytest.raises(tinker.RequestFailedError, match="already exists"):
        tc.save_weights_for_sampler("s").result()


def test_rest_listings_and_delete(service_client, rest_client):
    tc = service_client.create_lora_training_client(
        base_model=TINY, rank=3, seed=24, user_metadata={"owner": "tests"}
    ).result()
    run_id = tc.get_info().model_id
    training = tc.save_state("listed").result().path
    sampler = tc.save_weights_for_sampler("listed").result().path

    capabilities = rest_client.get_server_capabilities().result()
    names = {m.model_name for m in capabilities.supported_models}
    assert {"SmolLM2-135M-Instruct-Q4_1", TINY} <= names

    run = rest_client.get_training_run(run_id).result()
    assert run.base_model == TINY and run.lora_rank == 3 and run.user_metadata == {"owner": "tests"}
    assert run.last_checkpoint.tinker_path == training
    assert run.last_sampler_checkpoint.tinker_path == sampler
    runs = rest_client.list_training_runs(limit=100).result()
    assert run_id in {r.training_run_id for r in runs.training_runs}
    assert runs.cursor.total_count >= 1

    checkpoints = rest_client.list_checkpoints(run_id).result().checkpoints
    assert {(c.checkpoint_type, c.tinker_path) for c in checkpoints} == {
        ("training", training),
        ("sampler", sampler),
    }
    user = {
        c.tinker_path for c in rest_client.list_user_checkpoints(limit=1000).result().checkpoints
    }
    assert {training, sampler} <= user

    info = rest_client.get_weights_info_by_tinker_path(training).result()
    assert info.base_model == TINY and info.lora_rank == 3 and info.is_lora

    rest_client.delete_checkpoint_from_tinker_path(sampler).result()
    remaining = {c.tinker_path for c in rest_client.list_checkpoints(run_id).result().checkpoints}
    assert remaining == {training}
    with pytest.raises(Exception, match="unknown checkpoint"):
        service_client.create_sampling_client(model_path=sampler).result()


def test_a_damaged_checkpoint_is_named_by_its_tinker_path_not_the_servers_directory(
    service_client, engine
):
    """A checkpoint whose files went missing on the engine's disk fails to load with the
    backend's sentence, naming the tinker:// path: where the state directory is stays private."""
    tc = service_client.create_lora_training_client(base_model=TINY, rank=2, seed=24).result()
    state = tc.save_state("damaged").result().path
    sampler = tc.save_weights_for_sampler("damaged").result().path
    state_dir = engine.log_file.parent
    (state_dir / "runs" / _run_of(state) / "weights" / "damaged" / "optimizer.safetensors").unlink()
    sampler_dir = state_dir / "runs" / _run_of(sampler) / "sampler_weights" / "damaged"
    (sampler_dir / "adapter_model.safetensors").unlink()
    with pytest.raises(tinker.RequestFailedError) as failed:
        service_client.create_training_client_from_state_with_optimizer(state).result()
    messages = [(str(failed.value), f"{state}: this checkpoint has no optimizer state")]
    with pytest.raises(tinker.NotFoundError) as missing:  # the sampler's load is answered at once
        service_client.create_sampling_client(model_path=sampler).result()
    messages.append((str(missing.value), f"{sampler}: not an adapter checkpoint"))
    for message, sentence in messages:
        assert sentence in message and str(state_dir) not in message


def _run_of(tinker_path: str) -> str:
    return tinker_path.removeprefix("tinker://").split("/")[0]
