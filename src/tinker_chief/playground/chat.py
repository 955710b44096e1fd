"""Sampling for the chat: each model's answers streamed in chunks, with their tokens' probabilities.

The tinker SDK answers a sample request whole, so an answer streams by asking for `chunk` tokens
at a time and continuing from the prompt plus the tokens so far, until the model stops or
`max_tokens` is reached (`chunk` 0: one request, the answer arrives whole). At temperature 0
chunking changes nothing. Above it, each request's seed is derived from the user's seed, the
sample's index and the chunk's: reproducible, but not the draws of one whole request with that
seed (`chunk` 0 gives those: sample 1 is then what `chief eval-offline --seed S` samples). Every
chunk re-sends the prompt, which Tinker's cloud bills as prefill.

Once an answer is done, one scoring request over prompt + answer (`include_prompt_logprobs`,
`topk_prompt_logprobs`) gives each answer token's probability under the model (temperature 1,
no top-p) and its top alternatives; the same request scores a prompt for its per-token NLL.
Prompts are built by the project's renderer for the project's base model (what its checkpoints
were trained on), else by the model's own (`models.renderer_name_for`).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tinker_chief.errors import ChiefError, EvalError
from tinker_chief.playground.picker import ModelChoice

if TYPE_CHECKING:
    from tinker_cookbook.renderers import Message
    from transformers import PreTrainedTokenizerBase

    from tinker_chief.connection import Connection
    from tinker_chief.evals.model_sampler import GenerationSettings, ModelSampler
    from tinker_chief.models import RendererChoice

TOP_ALTERNATIVES = 5
MAX_MODELS = 4
MAX_SAMPLES = 8
_SEED_CHUNK_STRIDE = 1_000_003  # a prime: chunk seeds of different samples never coincide

Event = dict[str, object]  # one JSON object of the NDJSON stream the page reads
Emit = Callable[[Event], Awaitable[None]]


@dataclass
class OpenModel:
    """A model opened for sampling: its `ModelSampler` and the renderer name its prompts use."""

    sampler: ModelSampler
    renderer: str


class ModelHandles:
    """One open model per target, opened on first use through the playground's connection."""

    def __init__(self, connection: Connection, renderer: RendererChoice | None) -> None:
        self.connection = connection
        self.renderer = renderer  # the project's, for its base model (None: no project)
        self._open: dict[str, OpenModel] = {}

    async def open(self, choice: ModelChoice) -> OpenModel:
        known = self._open.get(choice.target)
        if known is not None:
            return known
        from tinker_chief.evals import ModelSampler
        from tinker_chief.models import chosen_renderer_name

        sampler = await ModelSampler.create(
            self.connection.service_client(),
            choice.target,
            concurrency=MAX_MODELS * MAX_SAMPLES,
            renderer=self.renderer,
        )
        name = chosen_renderer_name(sampler.base_model, self.renderer)
        self._open[choice.target] = opened = OpenModel(sampler, name)
        return opened


def describe(exc: BaseException) -> str:
    """One line for the page: chief's own message, else the exception's type and text."""
    text = str(exc) if isinstance(exc, ChiefError) else f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 500 else text[:497] + "..."


def _finite(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def token_views(
    tokenizer: PreTrainedTokenizerBase,
    ids: list[int],
    logprobs: Sequence[float | None] | None = None,
    top: Sequence[Sequence[tuple[int, float]] | None] | None = None,
) -> list[dict[str, object]]:
    """Each token as the page shows it: id, text, log-probability, top alternatives."""
    views = []
    for i, token in enumerate(ids):
        view: dict[str, object] = {"id": token, "text": tokenizer.decode([token])}
        if logprobs is not None:
            view["logprob"] = _finite(logprobs[i] if i < len(logprobs) else None)
        alternatives = top[i] if top is not None and i < len(top) else None
        if alternatives:
            view["top"] = [
                {"id": t, "text": tokenizer.decode([t]), "logprob": _finite(lp)}
                for t, lp in alternatives
            ]
        views.append(view)
    return views


def prompt_ids(model: OpenModel, messages: list[Message]) -> list[int]:
    """Exactly the tokens sent for `messages`: the renderer's generation prompt."""
    return list(model.sampler.renderer.build_generation_prompt(messages).to_ints())


async def score_tokens(
    model: OpenModel, ids: list[int]
) -> tuple[list[float | None], list[list[tuple[int, float]] | None]]:
    """Per-token log-probabilities (None for the first) and top alternatives of `ids`."""
    if len(ids) < 2:
        return [None] * len(ids), [None] * len(ids)
    import tinker

    try:
        response = await model.sampler.client.sample(
            prompt=tinker.ModelInput.from_ints(ids),
            num_samples=1,
            sampling_params=tinker.SamplingParams(max_tokens=1, temperature=0.0),
            include_prompt_logprobs=True,
            topk_prompt_logprobs=TOP_ALTERNATIVES,
        )
    except Exception as exc:
        raise EvalError(f"scoring with `{model.sampler.model}` failed: {describe(exc)}") from None
    logprobs = list(response.prompt_logprobs or [None] * len(ids))
    top = list(response.topk_prompt_logprobs or [None] * len(ids))
    return logprobs, top


def chunk_seed(seed: int | None, sample: int, chunk_index: int) -> int | None:
    if seed is None:
        return None
    return (seed + sample + _SEED_CHUNK_STRIDE * chunk_index) % (2**31)


async def sample_answer(
    model: OpenModel,
    prompt: list[int],
    settings: GenerationSettings,
    sample: int,
    chunk: int,
    emit: Emit,
) -> Event:
    """Sample one answer, emitting its tokens chunk by chunk; return its `done` event."""
    import tinker
    from tinker_cookbook.renderers import get_text_content

    sampler = model.sampler
    stops = list(sampler.renderer.get_stop_sequences())
    tokens: list[int] = []
    stop_reason = "length"
    for chunk_index in range(settings.max_tokens):  # at least one token per round
        want = settings.max_tokens - len(tokens)
        if want <= 0:
            break
        params = tinker.SamplingParams(
            max_tokens=min(want, chunk) if chunk > 0 else want,
            temperature=settings.temperature,
            top_p=settings.top_p,
            seed=chunk_seed(settings.seed, sample, chunk_index),
            stop=stops or None,
        )
        try:
            response = await sampler.client.sample(
                prompt=tinker.ModelInput.from_ints(prompt + tokens),
                num_samples=1,
                sampling_params=params,
            )
        except Exception as exc:
            raise EvalError(f"sampling from `{sampler.model}` failed: {describe(exc)}") from None
        sequence = response.sequences[0]
        new = list(sequence.tokens)
        tokens += new
        stop_reason = str(getattr(sequence, "stop_reason", "") or "")
        if new:
            await emit(
                {
                    "type": "tokens",
                    "sample": sample,
                    "tokens": token_views(sampler.tokenizer, new, sequence.logprobs),
                }
            )
        if stop_reason != "length" or not new:
            break
    message, _ = sampler.renderer.parse_response(tokens)
    logprobs, top = await score_tokens(model, prompt + tokens)
    return {
        "type": "done",
        "sample": sample,
        "text": get_text_content(message),
        "stop_reason": stop_reason,
        "tokens": token_views(
            sampler.tokenizer, tokens, logprobs[len(prompt) :], top[len(prompt) :]
        ),
    }


async def chat_events(
    handles: ModelHandles,
    chats: list[tuple[ModelChoice, list[Message]]],
    settings: GenerationSettings,
    samples: int,
    chunk: int,
) -> AsyncIterator[Event]:
    """Every model's answers as events, as they come: `prompt` (the tokens sent), `tokens`
    (a chunk of one sample), `done` (one sample, with probabilities), `error`, then `end`.
    A failing model reports its error; the others go on."""
    queue: asyncio.Queue[Event | None] = asyncio.Queue()

    async def one_model(choice: ModelChoice, messages: list[Message]) -> None:
        async def emit(event: Event) -> None:
            await queue.put({"model": choice.ref, **event})

        async def one_sample(model: OpenModel, prompt: list[int], index: int) -> None:
            try:
                await emit(await sample_answer(model, prompt, settings, index, chunk, emit))
            except Exception as exc:
                await emit({"type": "error", "sample": index, "message": describe(exc)})

        try:
            model = await handles.open(choice)
            prompt = prompt_ids(model, messages)
        except Exception as exc:
            await emit({"type": "error", "sample": None, "message": describe(exc)})
            return
        tokens = token_views(model.sampler.tokenizer, prompt)
        await emit(
            {
                "type": "prompt",
                "renderer": model.renderer,
                "base_model": model.sampler.base_model,
                "tokens": tokens,
            }
        )
        await asyncio.gather(*(one_sample(model, prompt, i) for i in range(samples)))

    async def run_all() -> None:
        try:
            await asyncio.gather(*(one_model(choice, messages) for choice, messages in chats))
        finally:
            await queue.put(None)

    runner = asyncio.create_task(run_all())
    try:
        while (event := await queue.get()) is not None:
            yield event
        yield {"type": "end"}
    finally:
        runner.cancel()  # the page went away: stop sampling for it


async def scored_prompt(
    handles: ModelHandles, choice: ModelChoice, messages: list[Message], nll: bool
) -> Event:
    """The tokens `messages` render to for `choice` and, with `nll`, each one's log-probability
    and the mean negative log-likelihood per scored token."""
    model = await handles.open(choice)
    ids = prompt_ids(model, messages)
    result: Event = {
        "model": choice.ref,
        "renderer": model.renderer,
        "base_model": model.sampler.base_model,
    }
    if not nll:
        return {**result, "tokens": token_views(model.sampler.tokenizer, ids)}
    logprobs, top = await score_tokens(model, ids)
    scored = [lp for lp in (_finite(v) for v in logprobs) if lp is not None]
    result["nll"] = -sum(scored) / len(scored) if scored else None
    return {**result, "tokens": token_views(model.sampler.tokenizer, ids, logprobs, top)}
