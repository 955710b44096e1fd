"""Evaluators for cookbook training loops (`TrainingClientEvaluator`, `SamplingClientEvaluator`).

`ConversationNLLEvaluator` measures NLL and bits-per-byte on held-out chats with a forward pass
of the live training client (no checkpoint needed); `ScoredNLLEvaluator` (the cookbook's
`SamplerNLLEvaluator`, same call and metrics) does the same through a sampling client and also
keeps each conversation's share (`score`), which `chief eval` turns into per-conversation
outcomes and bootstrap intervals. Headline `nll` is the token-weighted mean NLL over all
assistant tokens (nats/token), as the cookbook computes it.
`GenerativeAccuracyEvaluator` samples answers for a JSONL task and grades them. Loss math is
the cookbook's own (`compute_mean_nll`, `compute_bpb`), so numbers match its training logs.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict, Unpack

from tinker_cookbook.eval.evaluators import SamplingClientEvaluator, TrainingClientEvaluator
from tinker_cookbook.supervised.nll_evaluator import SamplerNLLEvaluator

from tinker_chief.evals.defaults import DEFAULT_CONCURRENCY
from tinker_chief.evals.eval_samples import EvalSample, load_conversations, load_samples
from tinker_chief.evals.graders import make_grader
from tinker_chief.evals.intervals import Interval, bootstrap
from tinker_chief.evals.model_sampler import GenerationSettings, ModelSampler
from tinker_chief.evals.records import summarize
from tinker_chief.evals.scoring import grade_samples

if TYPE_CHECKING:
    import tinker
    from tinker_cookbook.tokenizer_utils import Tokenizer

    from tinker_chief.models import RendererChoice


def nll_data(
    conversations: list[list[dict[str, str]]],
    model_name: str,
    max_length: int | None = None,
    renderer: RendererChoice | None = None,
) -> tuple[list[tinker.Datum], Tokenizer]:
    """Chats as datums weighted on assistant tokens (token-sum, not per-example mean), rendered
    with the renderer `renderer` chooses for the model (None: its own), and the model's
    tokenizer (bits per byte needs it)."""
    from tinker_chief.models import (
        chosen_renderer_name,
        conversation_datum,
        get_renderer,
        load_tokenizer,
    )

    tokenizer = load_tokenizer(model_name)
    chosen = get_renderer(chosen_renderer_name(model_name, renderer), tokenizer)
    data = [
        conversation_datum(c, chosen, max_length, "all_assistant_messages", "none")
        for c in conversations
    ]
    return data, tokenizer


def nll_metrics(
    logprobs: list[tinker.TensorData], data: list[tinker.Datum], tokenizer: Tokenizer, name: str
) -> dict[str, float]:
    from tinker_cookbook.supervised.common import compute_bpb, compute_mean_nll

    weights = [d.loss_fn_inputs["weights"] for d in data]
    targets = [d.loss_fn_inputs["target_tokens"] for d in data]
    return {
        f"{name}/nll": compute_mean_nll(logprobs, weights),
        f"{name}/bpb": compute_bpb(logprobs, weights, targets, tokenizer),
    }


class ConversationNLLEvaluator(TrainingClientEvaluator):
    """NLL and bits-per-byte of held-out conversations under the training client's weights."""

    def __init__(self, data: list[tinker.Datum], tokenizer: Tokenizer, name: str = "test") -> None:
        self.data, self.tokenizer, self.name = data, tokenizer, name

    @classmethod
    def from_jsonl(
        cls,
        path: str | Path,
        model_name: str,
        name: str = "test",
        limit: int | None = None,
        max_length: int | None = None,
        renderer: RendererChoice | None = None,
    ) -> ConversationNLLEvaluator:
        conversations = load_conversations(path, limit)
        data, tokenizer = nll_data(conversations, model_name, max_length, renderer)
        return cls(data, tokenizer, name)

    async def __call__(self, training_client: tinker.TrainingClient) -> dict[str, float]:
        result = await training_client.forward(self.data, loss_fn="cross_entropy")
        logprobs = [output["logprobs"] for output in result.loss_fn_outputs]
        return nll_metrics(logprobs, self.data, self.tokenizer, self.name)


@dataclass(frozen=True)
class ConversationNLL:
    """One conversation's share of the pooled NLL and bits-per-byte.

    `nats`/`tokens` are the cookbook's `compute_mean_nll` numerator and denominator (weighted
    assistant tokens); `bpb_nats`/`bytes` are `compute_bpb`'s (trained, non-special tokens).
    """

    id: str
    nats: float
    tokens: float
    bpb_nats: float
    bytes: int

    @property
    def nll(self) -> float:
        """NLL per token of this conversation: its per-sample outcome."""
        return self.nats / self.tokens if self.tokens else float("nan")


@dataclass(frozen=True)
class NLLScores:
    metrics: dict[str, float]  # the evaluator's usual `{name}/nll`, `{name}/bpb`
    conversations: list[ConversationNLL]


def _bpb_parts(
    logprobs: tinker.TensorData,
    weights: tinker.TensorData,
    targets: tinker.TensorData,
    tokenizer: Tokenizer,
) -> tuple[float, int]:
    """Nats and UTF-8 bytes of the tokens `compute_bpb` counts, for one conversation.

    Uses the cookbook's own (private) mask and byte counter rather than a copy, so the pooled
    ratio of these parts is `compute_bpb` exactly (tests/evals checks it).
    """
    from tinker_cookbook.supervised.common import (
        _counted_byte_count,
        _is_special_token,
        _special_token_ids,
    )

    special = _special_token_ids(tokenizer)
    ids = [int(t) for t in targets.data]
    counted = [
        w > 0 and not _is_special_token(t, tokenizer, special)
        for w, t in zip(weights.data, ids, strict=True)
    ]
    nats = -sum(float(lp) for lp, keep in zip(logprobs.data, counted, strict=True) if keep)
    return nats, _counted_byte_count(ids, counted, tokenizer)


def conversation_parts(
    logprobs: list[tinker.TensorData], data: list[tinker.Datum], tokenizer: Tokenizer
) -> list[ConversationNLL]:
    parts = []
    for index, (lp, datum) in enumerate(zip(logprobs, data, strict=True), start=1):
        weights, targets = datum.loss_fn_inputs["weights"], datum.loss_fn_inputs["target_tokens"]
        nats = -sum(float(x) * float(w) for x, w in zip(lp.data, weights.data, strict=True))
        bpb_nats, n_bytes = _bpb_parts(lp, weights, targets, tokenizer)
        parts.append(ConversationNLL(str(index), nats, float(sum(weights.data)), bpb_nats, n_bytes))
    return parts


def pooled_nll(parts: Sequence[ConversationNLL]) -> dict[str, float]:
    """Token-weighted NLL and bits-per-byte of a set of conversations (the headline values)."""
    tokens, n_bytes = sum(p.tokens for p in parts), sum(p.bytes for p in parts)
    return {
        "nll": sum(p.nats for p in parts) / tokens if tokens else float("nan"),
        "bpb": sum(p.bpb_nats for p in parts) / (math.log(2) * n_bytes)
        if n_bytes
        else float("nan"),
    }


def nll_intervals(
    parts: Sequence[ConversationNLL], resamples: int = 1000, seed: int = 0
) -> dict[str, Interval]:
    """95% bootstrap intervals of the pooled nll and bpb, resampling whole conversations."""
    return bootstrap(parts, pooled_nll, resamples, seed)


class ScoredNLLEvaluator(SamplerNLLEvaluator):
    """The cookbook's `SamplerNLLEvaluator`, also returning per-conversation parts (`score`)."""

    def __init__(self, data: list[tinker.Datum], tokenizer: Tokenizer, name: str = "test") -> None:
        super().__init__(data, name=name, tokenizer=tokenizer)
        self.tokenizer: Tokenizer = tokenizer  # always given: bits per byte are part of the score

    async def score(self, sampling_client: tinker.SamplingClient) -> NLLScores:
        logprobs = await asyncio.gather(
            *(self._compute_logprobs(sampling_client, d) for d in self.data)
        )
        return NLLScores(
            nll_metrics(list(logprobs), self.data, self.tokenizer, self.name),
            conversation_parts(list(logprobs), self.data, self.tokenizer),
        )

    async def __call__(self, sampling_client: tinker.SamplingClient) -> dict[str, float]:
        return (await self.score(sampling_client)).metrics


def sampler_nll_evaluator(
    path: str | Path,
    model_name: str,
    name: str = "test",
    limit: int | None = None,
    max_length: int | None = None,
    renderer: RendererChoice | None = None,
) -> ScoredNLLEvaluator:
    """The cookbook's `SamplerNLLEvaluator` on our conversation JSONL (for saved checkpoints)."""
    conversations = load_conversations(path, limit)
    data, tokenizer = nll_data(conversations, model_name, max_length, renderer)
    return ScoredNLLEvaluator(data, tokenizer, name=name)


class AccuracyOptions(TypedDict, total=False):
    """`GenerativeAccuracyEvaluator`'s optional settings, as `from_jsonl` passes them on."""

    settings: GenerationSettings | None
    name: str
    concurrency: int
    renderer: RendererChoice | None


class GenerativeAccuracyEvaluator(SamplingClientEvaluator):
    """Sample an answer per JSONL sample, grade it, report accuracy with its Wilson interval."""

    def __init__(
        self,
        samples: list[EvalSample],
        base_model: str,
        grader: str = "exact",
        settings: GenerationSettings | None = None,
        name: str = "task",
        concurrency: int = DEFAULT_CONCURRENCY,
        renderer: RendererChoice | None = None,
    ) -> None:
        self.samples, self.base_model, self.name = samples, base_model, name
        self.renderer = renderer  # None: the model's own
        self.grader = make_grader(grader)
        self.settings = settings or GenerationSettings()
        self.concurrency = concurrency

    @classmethod
    def from_jsonl(
        cls,
        path: str | Path,
        base_model: str,
        grader: str = "exact",
        limit: int | None = None,
        **options: Unpack[AccuracyOptions],
    ) -> GenerativeAccuracyEvaluator:
        return cls(load_samples(path, limit), base_model, grader, **options)

    async def __call__(self, sampling_client: tinker.SamplingClient) -> dict[str, float]:
        from tinker_chief.models import chosen_renderer_name, get_renderer, load_tokenizer

        tokenizer = load_tokenizer(self.base_model)
        renderer = get_renderer(chosen_renderer_name(self.base_model, self.renderer), tokenizer)
        sampler = ModelSampler(
            sampling_client, self.base_model, tokenizer, renderer, self.concurrency
        )
        s = summarize(await grade_samples(sampler, self.samples, self.grader, self.settings))
        reported = {
            "accuracy": s["accuracy"],
            "n": s["n"],
            "ci_low": s["ci_low"],
            "ci_high": s["ci_high"],
            "unscored": s["unscored"],
            "errors": s["errors"],
        }
        return {f"{self.name}/{key}": float(value) for key, value in reported.items()}
