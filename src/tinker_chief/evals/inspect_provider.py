"""Inspect AI model provider `tinker/<model>`: any base model or `tinker://` checkpoint via the SDK.

`inspect eval TASK --model tinker/SmolLM2-135M-Instruct-Q4_1` or `--model tinker/tinker://run/...`
(registered through the `inspect_ai` entry point, see `_inspect_registry.py`). Messages are
rendered with the model's cookbook renderer by `ModelSampler` (`-M renderer=NAME` picks another,
for the model whose base is `-M renderer_for=BASE` when given: what `chief eval` passes for a
project whose chief.toml names its own renderer); temperature, max tokens, top_p,
stop sequences, seed, num_choices, logprobs and top_logprobs (where the backend supports them)
are honoured. Inspect calls `generate` once per sample, concurrently up to `max_connections`
(default `evals.defaults.DEFAULT_CONCURRENCY`, 64; `-M concurrency=N`); the requests are in flight
together, and the engine batches them. Backend: Inspect's `--model-base-url URL`
(and `-M engine_api_key=...` where an engine checks keys), else the precedence every chief
command uses (`tinker_chief.connection`: environment, Tinker's cloud with `TINKER_API_KEY`, or
a local engine started once per process).
"""

from __future__ import annotations

import asyncio
import atexit
import math
from typing import Any

from inspect_ai.model import (
    ChatCompletionChoice,
    ChatMessage,
    ChatMessageAssistant,
    GenerateConfig,
    Logprob,
    Logprobs,
    ModelAPI,
    ModelOutput,
    ModelUsage,
    TopLogprob,
)
from inspect_ai.tool import ToolChoice, ToolInfo

from tinker_chief.connection import Connection, choose_backend, open_connection
from tinker_chief.errors import EvalError
from tinker_chief.evals.defaults import DEFAULT_CONCURRENCY
from tinker_chief.evals.model_sampler import Generation, GenerationSettings, ModelSampler
from tinker_chief.models import RendererChoice, cookbook_messages

DEFAULT_MAX_TOKENS = 512
_connections: dict[tuple[str | None, str | None], Connection] = {}


def _shared_connection(base_url: str | None, api_key: str | None, model_name: str) -> Connection:
    """One backend (and at most one local engine, serving the first model's directory if it is
    one) per process, closed at exit."""
    key = (base_url, api_key)
    if key not in _connections:
        _connections[key] = open_connection(
            choose_backend(base_url=base_url), api_key=api_key, models=[model_name]
        )
        atexit.register(_connections[key].close)
    return _connections[key]


def _message_dicts(messages: list[ChatMessage]) -> list[dict[str, str]]:
    out = []
    for message in messages:
        role = "user" if message.role == "tool" else message.role
        out.append({"role": role, "content": message.text})
    return out


def _finite(logprob: float) -> float:
    return float(logprob) if math.isfinite(logprob) else -1e9


class TinkerModelAPI(ModelAPI):
    """Inspect `ModelAPI` over a `ModelSampler`."""

    def __init__(
        self,
        model_name: str,
        base_url: str | None = None,
        api_key: str | None = None,
        config: GenerateConfig = GenerateConfig(),
        **model_args: Any,
    ) -> None:
        super().__init__(model_name, base_url, api_key, ["TINKER_API_KEY"], config)
        self.concurrency = int(model_args.pop("concurrency", DEFAULT_CONCURRENCY))
        self._base_url = base_url
        self._api_key = model_args.pop("engine_api_key", None) or api_key
        renderer = model_args.pop("renderer", None)
        renderer_for = model_args.pop("renderer_for", None)
        if model_args:
            raise EvalError(
                f"tinker provider: unknown model args {sorted(model_args)} (expected "
                "concurrency, engine_api_key, renderer, renderer_for; the URL goes in "
                "--model-base-url)"
            )
        if renderer_for is not None and renderer is None:
            raise EvalError("tinker provider: -M renderer_for needs -M renderer (the name to use)")
        self._renderer = (
            RendererChoice(str(renderer), None if renderer_for is None else str(renderer_for))
            if renderer is not None
            else None
        )
        self._sampler: ModelSampler | None = None
        self._lock = asyncio.Lock()

    async def sampler(self) -> ModelSampler:
        async with self._lock:
            if self._sampler is None:
                connection = _shared_connection(self._base_url, self._api_key, self.model_name)
                self._sampler = await ModelSampler.create(
                    connection.service_client(),
                    self.model_name,
                    self.concurrency,
                    renderer=self._renderer,
                )
        return self._sampler

    def max_tokens(self) -> int | None:
        return DEFAULT_MAX_TOKENS

    def max_connections(self) -> int:
        return self.concurrency

    async def count_text_tokens(self, text: str) -> int:
        # Inspect's default uses tiktoken, which downloads its vocabulary (no network here).
        return len((await self.sampler()).tokenizer.encode(text, add_special_tokens=False))

    async def generate(
        self,
        input: list[ChatMessage],
        tools: list[ToolInfo],
        tool_choice: ToolChoice,
        config: GenerateConfig,
    ) -> ModelOutput:
        if tools:
            raise EvalError(
                "tinker provider: tool calling is not supported yet (task passed tools)"
            )
        sampler = await self.sampler()
        settings = GenerationSettings(
            max_tokens=config.max_tokens or DEFAULT_MAX_TOKENS,
            temperature=0.0 if config.temperature is None else config.temperature,
            top_p=1.0 if config.top_p is None else config.top_p,
            seed=config.seed,
            stop=tuple(config.stop_seqs or ()),
        )
        generations = await sampler.generate(
            _message_dicts(input),
            settings,
            num_samples=config.num_choices or 1,
            top_logprobs=(config.top_logprobs or 0) if config.logprobs else 0,
        )
        prompt = sampler.renderer.build_generation_prompt(cookbook_messages(_message_dicts(input)))
        prompt_tokens = prompt.length
        choices = [self._choice(g, sampler, bool(config.logprobs)) for g in generations]
        output_tokens = sum(len(g.tokens) for g in generations)
        return ModelOutput(
            model=self.model_name,
            choices=choices,
            usage=ModelUsage(
                input_tokens=prompt_tokens,
                output_tokens=output_tokens,
                total_tokens=prompt_tokens + output_tokens,
            ),
        )

    def _choice(
        self, generation: Generation, sampler: ModelSampler, want_logprobs: bool
    ) -> ChatCompletionChoice:
        logprobs = None
        if want_logprobs and generation.logprobs is not None:
            tops = generation.top_logprobs or [None] * len(generation.tokens)
            logprobs = Logprobs(
                content=[
                    Logprob(
                        token=sampler.tokenizer.decode([tok]),
                        logprob=_finite(lp),
                        top_logprobs=[
                            TopLogprob(token=sampler.tokenizer.decode([t]), logprob=_finite(v))
                            for t, v in top
                        ]
                        if top
                        else None,
                    )
                    for tok, lp, top in zip(
                        generation.tokens, generation.logprobs, tops, strict=False
                    )
                ]
            )
        stop = "max_tokens" if generation.stop_reason == "length" else "stop"
        return ChatCompletionChoice(
            message=ChatMessageAssistant(
                content=generation.text, model=self.model_name, source="generate"
            ),
            stop_reason=stop,
            logprobs=logprobs,
        )
