"""Evaluators for cookbook training loops (`TrainingClientEvaluator`, `SamplingClientEvaluator`).

`ConversationNLLEvaluator` measures NLL and bits-per-byte on held-out chats with a forward pass
of the live training client (no checkpoint needed); `SamplerNLLEvaluator` (the cookbook's)
does the same through a sampling client, which is what `chief eval` uses for saved models.
`GenerativeAccuracyEvaluator` samples answers for a JSONL task and grades them. Loss math is
the cookbook's own (`compute_mean_nll`, `compute_bpb`), so numbers match its training logs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tinker_cookbook.eval.evaluators import SamplingClientEvaluator, TrainingClientEvaluator

from tinker_chief.evals.data import EvalSample, load_conversations, load_samples
from tinker_chief.evals.graders import make_grader
from tinker_chief.evals.records import summarize
from tinker_chief.evals.sampling import GenerationSettings, ModelSampler
from tinker_chief.evals.scoring import grade_samples


def conversations_to_data(conversations: list[list[dict[str, str]]], model_name: str,
                          max_length: int | None = None) -> tuple[list[Any], Any]:
    """Render chats into datums weighted on assistant tokens (token-sum, not per-example mean)."""
    from tinker_cookbook.renderers import TrainOnWhat
    from tinker_cookbook.supervised.data import conversation_to_datum

    from tinker_chief.models import get_renderer, load_tokenizer, renderer_name_for

    tokenizer = load_tokenizer(model_name)
    renderer = get_renderer(renderer_name_for(model_name), tokenizer)
    data = [conversation_to_datum(c, renderer, max_length, TrainOnWhat.ALL_ASSISTANT_MESSAGES, reduction="none")
            for c in conversations]
    return data, tokenizer


def nll_metrics(logprobs: list[Any], data: list[Any], tokenizer: Any, name: str) -> dict[str, float]:
    from tinker_cookbook.supervised.common import compute_bpb, compute_mean_nll

    weights = [d.loss_fn_inputs["weights"] for d in data]
    targets = [d.loss_fn_inputs["target_tokens"] for d in data]
    return {f"{name}/nll": compute_mean_nll(logprobs, weights),
            f"{name}/bpb": compute_bpb(logprobs, weights, targets, tokenizer)}


class ConversationNLLEvaluator(TrainingClientEvaluator):
    """NLL and bits-per-byte of held-out conversations under the training client's weights."""

    def __init__(self, data: list[Any], tokenizer: Any, name: str = "test") -> None:
        self.data, self.tokenizer, self.name = data, tokenizer, name

    @classmethod
    def from_jsonl(cls, path: str | Path, model_name: str, name: str = "test", limit: int | None = None,
                   max_length: int | None = None) -> ConversationNLLEvaluator:
        data, tokenizer = conversations_to_data(load_conversations(path, limit), model_name, max_length)
        return cls(data, tokenizer, name)

    async def __call__(self, training_client: Any) -> dict[str, float]:
        result = await training_client.forward(self.data, loss_fn="cross_entropy")
        logprobs = [output["logprobs"] for output in result.loss_fn_outputs]
        return nll_metrics(logprobs, self.data, self.tokenizer, self.name)


def sampler_nll_evaluator(path: str | Path, model_name: str, name: str = "test", limit: int | None = None,
                          max_length: int | None = None) -> SamplingClientEvaluator:
    """The cookbook's `SamplerNLLEvaluator` on our conversation JSONL (for saved checkpoints)."""
    from tinker_cookbook.supervised.nll_evaluator import SamplerNLLEvaluator

    data, tokenizer = conversations_to_data(load_conversations(path, limit), model_name, max_length)
    return SamplerNLLEvaluator(data, name=name, tokenizer=tokenizer)


class GenerativeAccuracyEvaluator(SamplingClientEvaluator):
    """Sample an answer per JSONL sample, grade it, report accuracy with its Wilson interval."""

    def __init__(self, samples: list[EvalSample], base_model: str, grader: str = "exact",
                 settings: GenerationSettings | None = None, name: str = "task", concurrency: int = 16) -> None:
        self.samples, self.base_model, self.name = samples, base_model, name
        self.grader = make_grader(grader)
        self.settings = settings or GenerationSettings()
        self.concurrency = concurrency

    @classmethod
    def from_jsonl(cls, path: str | Path, base_model: str, grader: str = "exact", limit: int | None = None,
                   **kwargs: Any) -> GenerativeAccuracyEvaluator:
        return cls(load_samples(path, limit), base_model, grader, **kwargs)

    async def __call__(self, sampling_client: Any) -> dict[str, float]:
        from tinker_chief.models import get_renderer, load_tokenizer, renderer_name_for

        tokenizer = load_tokenizer(self.base_model)
        renderer = get_renderer(renderer_name_for(self.base_model), tokenizer)
        sampler = ModelSampler(sampling_client, self.base_model, tokenizer, renderer, self.concurrency)
        summary = summarize(await grade_samples(sampler, self.samples, self.grader, self.settings))
        keys = ("accuracy", "n", "ci_low", "ci_high", "unscored", "errors")
        return {f"{self.name}/{key}": float(summary[key]) for key in keys}
