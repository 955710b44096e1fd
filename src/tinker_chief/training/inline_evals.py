"""Inline evaluators for the loop, built from the cookbook's and the evals capability's pieces.

Frequent: validation NLL with the cookbook's `SamplerNLLEvaluator` on the held-out datums
(token-sum weights, the same arithmetic `chief eval` uses). Infrequent: sampled accuracy with
`tinker_chief.evals.GenerativeAccuracyEvaluator` (greedy answers graded by an evals grader,
with a Wilson interval). Both are `SamplingClientEvaluator`s, fed a snapshot of the current
weights; `run_evaluators` runs a list of builders on one snapshot.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from tinker_cookbook.eval.evaluators import SamplingClientEvaluator

from tinker_chief.training.data import Message, Problem

if TYPE_CHECKING:
    import tinker
    from tinker_cookbook.renderers import Renderer

    from tinker_chief.models import RendererChoice

EvaluatorBuilder = Callable[[], SamplingClientEvaluator]


def nll_evaluator_builder(val_data: list[tinker.Datum], name: str = "val") -> EvaluatorBuilder:
    from tinker_cookbook.supervised.nll_evaluator import SamplerNLLEvaluator

    return lambda: SamplerNLLEvaluator(val_data, name=name)


def accuracy_evaluator_builder(
    problems: list[Problem],
    base_model: str,
    grader: str,
    max_tokens: int,
    name: str = "val",
    renderer: RendererChoice | None = None,
) -> EvaluatorBuilder:
    from tinker_chief.evals.eval_samples import EvalSample
    from tinker_chief.evals.evaluators import GenerativeAccuracyEvaluator
    from tinker_chief.evals.model_sampler import GenerationSettings

    samples = [
        EvalSample(str(i), [dict(m) for m in p.prompt], p.answer) for i, p in enumerate(problems)
    ]
    settings = GenerationSettings(max_tokens=max_tokens)
    return lambda: GenerativeAccuracyEvaluator(
        samples, base_model, grader, settings, name=name, renderer=renderer
    )


def generate_answers(
    sampling_client: tinker.SamplingClient,
    base_model: str,
    renderer: Renderer,
    prompts: list[list[Message]],
    max_tokens: int,
    temperature: float = 0.0,
) -> list[str]:
    """One answer per prompt (prompt distillation's teacher labels), via the evals sampler."""
    from tinker_chief.evals.model_sampler import GenerationSettings, ModelSampler
    from tinker_chief.models import load_tokenizer

    sampler = ModelSampler(sampling_client, base_model, load_tokenizer(base_model), renderer)
    settings = GenerationSettings(max_tokens=max_tokens, temperature=temperature)

    async def gather() -> list[str]:
        results = await asyncio.gather(*[sampler.generate(p, settings) for p in prompts])
        return [generations[0].text for generations in results]

    return asyncio.run(gather())


def run_evaluators(
    builders: list[EvaluatorBuilder], sampling_client: tinker.SamplingClient
) -> dict[str, float]:
    async def gather() -> list[dict[str, float]]:
        return await asyncio.gather(*[builder()(sampling_client) for builder in builders])

    metrics: dict[str, float] = {}
    for result in asyncio.run(gather()):
        metrics.update({key: float(value) for key, value in result.items()})
    return metrics
