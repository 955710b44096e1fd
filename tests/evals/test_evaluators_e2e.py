"""Cookbook evaluators on the real engine: training-client NLL agrees with sampler NLL."""

from __future__ import annotations

import asyncio

import pytest

from tinker_chief.evals.evaluators import (
    ConversationNLLEvaluator,
    GenerativeAccuracyEvaluator,
    pooled_nll,
    sampler_nll_evaluator,
)
from tinker_chief.evals.model_sampler import GenerationSettings, ModelSampler

from jsonl_support import write_jsonl

TINY = "tiny-random-llama"


def test_nll_via_forward_matches_sampler_nll_and_accuracy_evaluator(connection, qa_file, tmp_path):
    conv = write_jsonl(
        tmp_path / "conv.jsonl",
        [
            {
                "messages": [
                    {"role": "user", "content": "hi"},
                    {"role": "assistant", "content": "hello there"},
                ]
            },
            {"input": "name a colour", "output": "blue, or maybe green"},
        ],
    )

    async def run():
        service = connection.service_client()
        training = await service.create_lora_training_client(base_model=TINY, rank=2)
        forward_metrics = await ConversationNLLEvaluator.from_jsonl(conv, TINY, name="val")(
            training
        )
        sampling = await service.create_sampling_client(base_model=TINY)
        sampler_metrics = await sampler_nll_evaluator(conv, TINY, name="val")(sampling)
        scores = await sampler_nll_evaluator(conv, TINY, name="val").score(sampling)
        accuracy = await GenerativeAccuracyEvaluator.from_jsonl(
            qa_file, TINY, grader="numeric", name="qa", settings=GenerationSettings(max_tokens=4)
        )(sampling)
        # A saved checkpoint is reachable by its tinker:// path, with the base model's renderer.
        saved = await training.save_weights_for_sampler("eval-test")
        checkpoint = await ModelSampler.create(service, saved.path)
        return forward_metrics, sampler_metrics, scores, accuracy, checkpoint, saved.path

    forward_metrics, sampler_metrics, scores, accuracy, checkpoint, path = asyncio.run(run())
    # Per-conversation parts pool back to the cookbook's own nll and bpb (same masks, same bytes).
    assert scores.metrics == sampler_metrics and [c.id for c in scores.conversations] == ["1", "2"]
    pooled = pooled_nll(scores.conversations)
    assert pooled["nll"] == pytest.approx(sampler_metrics["val/nll"], rel=1e-5)
    assert pooled["bpb"] == pytest.approx(sampler_metrics["val/bpb"], rel=1e-5)
    assert scores.conversations[0].nll != pytest.approx(scores.conversations[1].nll)
    assert (
        path.startswith("tinker://") and checkpoint.base_model == TINY and checkpoint.model == path
    )
    assert forward_metrics["val/nll"] > 0 and forward_metrics["val/bpb"] > 0
    # A fresh LoRA adapter is zero-initialised, so both paths score the base weights.
    assert forward_metrics["val/nll"] == pytest.approx(sampler_metrics["val/nll"], rel=1e-3)
    assert accuracy["qa/n"] + accuracy["qa/unscored"] + accuracy["qa/errors"] == 5
    assert set(accuracy) >= {"qa/accuracy", "qa/ci_low", "qa/ci_high"}


@pytest.mark.parametrize("project_renderer", [None, "qwen3_disable_thinking"])
def test_held_out_nll_data_is_what_training_renders_for_validation(tmp_path, project_renderer):
    """Evals' held-out NLL and training's validation loss render a chat one way
    (`models.conversation_datum`): the same tokens, targets and weights for the same file, in
    the model's own chat format or the one the project's chief.toml names."""
    from tinker_chief.evals.eval_samples import load_conversations
    from tinker_chief.evals.evaluators import nll_data
    from tinker_chief.models import RendererChoice, get_renderer, renderer_name_for
    from tinker_chief.training import data as training_data

    chats = write_jsonl(
        tmp_path / "chats.jsonl",
        [
            {
                "messages": [
                    {"role": "system", "content": "be brief"},
                    {"role": "user", "content": "hi"},
                    {"role": "assistant", "content": "hello there"},
                    {"role": "user", "content": "and again?"},
                    {"role": "assistant", "content": "hello once more"},
                ]
            },
            {
                "messages": [
                    {"role": "user", "content": "name a colour"},
                    {"role": "assistant", "content": "blue"},
                ]
            },
        ],
    )
    choice = RendererChoice(project_renderer, TINY) if project_renderer else None
    held_out, tokenizer = nll_data(load_conversations(chats), TINY, 64, choice)
    renderer = get_renderer(project_renderer or renderer_name_for(TINY), tokenizer)
    validation = training_data.conversations_to_data(
        training_data.read_sft(chats), renderer, 64, "all_assistant_messages", reduction="none"
    )

    def rendered(data):
        inputs = [d.loss_fn_inputs for d in data]
        tokens = [d.model_input.to_ints() for d in data]
        return [(t, i["target_tokens"].data, i["weights"].data) for t, i in zip(tokens, inputs)]

    assert rendered(held_out) == rendered(validation)
    first_weights = rendered(held_out)[0][2]
    assert 0 < sum(first_weights) < len(first_weights)  # assistant tokens only, both turns
