"""The SDK-facing model handle every eval uses: render, sample concurrently, parse, score options.

`ModelSampler` wraps a `tinker.SamplingClient` with the model's cookbook renderer (so prompts
are exactly what training saw), a semaphore bounding in-flight requests (the engine batches
concurrent requests, so concurrency is what buys throughput), and the tokenizer from our model
catalog (the SDK's `get_tokenizer` would go to the Hugging Face hub).
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypedDict

from tinker_chief.errors import EngineError, EvalError, ModelNotFoundError
from tinker_chief.evals.defaults import DEFAULT_CONCURRENCY
from tinker_chief.evals.usage import TokenUsage, metered
from tinker_chief.models import cookbook_messages

if TYPE_CHECKING:
    import tinker
    from tinker_cookbook.renderers import Renderer
    from tinker_cookbook.tokenizer_utils import Tokenizer

    from tinker_chief.models import RendererChoice


@dataclass(frozen=True)
class GenerationSettings:
    """What shapes a sampled answer; recorded with every result."""

    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = 0
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class Generation:
    text: str
    tokens: list[int]
    logprobs: list[float] | None
    stop_reason: str
    top_logprobs: list[list[tuple[int, float]] | None] | None = None


class ModelReference(TypedDict, total=False):
    """`create_sampling_client`'s arguments naming the model: one of the two."""

    model_path: str
    base_model: str


def model_reference(model: str) -> ModelReference:
    """`tinker://...` is a checkpoint path; anything else is a base model name."""
    if model.startswith("tinker://"):
        return {"model_path": model}
    return {"base_model": model}


def _open_error(model: str, exc: Exception) -> Exception:
    """A rejected key is not a missing model: say which setting to fix (never echoing the key)."""
    import tinker

    if isinstance(exc, (tinker.AuthenticationError, tinker.PermissionDeniedError)):
        return EngineError(
            f"the backend rejected the API key while opening `{model}` ({_short(exc)}); "
            "check TINKER_API_KEY for Tinker's cloud, or the engine's --api-key / "
            "CHIEF_ENGINE_API_KEY for a local engine"
        )
    return ModelNotFoundError(f"cannot open model `{model}` for sampling: {_short(exc)}")


class ModelSampler:
    """A model reachable through the tinker SDK, with its renderer and a concurrency bound."""

    def __init__(
        self,
        sampling_client: tinker.SamplingClient,
        base_model: str,
        tokenizer: Tokenizer,
        renderer: Renderer,
        concurrency: int = DEFAULT_CONCURRENCY,
        model: str | None = None,
        usage: TokenUsage | None = None,
    ) -> None:
        # every prompt prefilled and token sampled through this handle
        self.usage = usage or TokenUsage()
        self.client = metered(sampling_client, self.usage)
        self.base_model = base_model
        self.model = model or base_model
        self.tokenizer = tokenizer
        self.renderer = renderer
        self.default_settings = GenerationSettings()
        self._semaphore = asyncio.Semaphore(max(1, concurrency))

    @classmethod
    async def create(
        cls,
        service_client: tinker.ServiceClient,
        model: str,
        concurrency: int = DEFAULT_CONCURRENCY,
        usage: TokenUsage | None = None,
        renderer: RendererChoice | None = None,
    ) -> ModelSampler:
        """Open a sampling client for a `tinker://` path or base model name, rendering with the
        renderer `renderer` chooses for its base model (None: the model's own)."""
        from tinker_chief.models import chosen_renderer_name, get_renderer, load_tokenizer

        try:
            client = await service_client.create_sampling_client(**model_reference(model))
            base_model = client.get_base_model()
        except Exception as exc:  # SDK errors carry HTTP details; say which model failed
            raise _open_error(model, exc) from None
        tokenizer = load_tokenizer(base_model)
        chosen = get_renderer(chosen_renderer_name(base_model, renderer), tokenizer)
        return cls(client, base_model, tokenizer, chosen, concurrency, model, usage)

    def _sampling_params(self, settings: GenerationSettings) -> tinker.SamplingParams:
        import tinker

        renderer_stops = self.renderer.get_stop_sequences()
        token_stops = [s for s in renderer_stops if isinstance(s, int)]
        # String stops are honoured after decoding (see _truncate); the renderer's token stops
        # go to the engine, which cannot mix the two kinds in one list.
        string_stops = [s for s in renderer_stops if isinstance(s, str)]
        stop: list[int] | list[str] = token_stops or [*string_stops, *settings.stop]
        return tinker.SamplingParams(
            max_tokens=settings.max_tokens,
            temperature=settings.temperature,
            top_p=settings.top_p,
            seed=settings.seed,
            stop=stop or None,
        )

    async def generate(
        self,
        messages: list[dict[str, str]],
        settings: GenerationSettings | None = None,
        num_samples: int = 1,
        top_logprobs: int = 0,
    ) -> list[Generation]:
        """Sample `num_samples` answers; `top_logprobs` > 0 asks for that many alternatives per
        token."""
        settings = settings or self.default_settings
        prompt = self.renderer.build_generation_prompt(cookbook_messages(messages))
        async with self._semaphore:
            try:
                response = await self.client.sample(
                    prompt=prompt,
                    num_samples=num_samples,
                    sampling_params=self._sampling_params(settings),
                    topk_sample_logprobs=top_logprobs,
                )
            except Exception as exc:
                raise EvalError(f"sampling from `{self.model}` failed: {_short(exc)}") from None
        return [self._parse(sequence, settings) for sequence in response.sequences]

    def _parse(self, sequence: tinker.SampledSequence, settings: GenerationSettings) -> Generation:
        from tinker_cookbook.renderers import get_text_content

        tokens = list(sequence.tokens)
        message, _termination = self.renderer.parse_response(tokens)
        text = _truncate(get_text_content(message), settings.stop)
        stop_reason = str(sequence.stop_reason or "")
        logprobs = list(sequence.logprobs) if sequence.logprobs is not None else None
        top = sequence.topk_logprobs
        return Generation(
            text=text,
            tokens=tokens,
            logprobs=logprobs,
            stop_reason=stop_reason,
            top_logprobs=list(top) if top is not None else None,
        )

    async def generate_text(self, messages: list[dict[str, str]], max_tokens: int = 256) -> str:
        """`TextGenerator` protocol: one greedy answer (used when this model judges)."""
        return (await self.generate(messages, GenerationSettings(max_tokens=max_tokens)))[0].text

    async def continuation_logprob(
        self, messages: list[dict[str, str]], continuation: str
    ) -> float:
        """log P(continuation | rendered prompt), via `compute_logprobs` on prompt+continuation."""
        prompt_tokens = self.renderer.build_generation_prompt(cookbook_messages(messages)).to_ints()
        cont_tokens = self.tokenizer.encode(continuation, add_special_tokens=False)
        if not cont_tokens:
            raise EvalError(f"continuation {continuation!r} encodes to no tokens")
        import tinker

        full = tinker.ModelInput.from_ints(prompt_tokens + cont_tokens)
        async with self._semaphore:
            try:
                logprobs = await self.client.compute_logprobs(full)
            except Exception as exc:
                raise EvalError(f"scoring with `{self.model}` failed: {_short(exc)}") from None
        tail = logprobs[-len(cont_tokens) :]
        if any(lp is None for lp in tail):
            raise EvalError(f"`{self.model}` returned no logprob for part of {continuation!r}")
        return float(sum(tail))

    async def option_probabilities(
        self, messages: list[dict[str, str]], options: list[str]
    ) -> list[float]:
        """Softmax over the options' continuation logprobs: the model's confidence in each."""
        scores = await asyncio.gather(*(self.continuation_logprob(messages, o) for o in options))
        top = max(scores)
        weights = [math.exp(s - top) for s in scores]
        total = sum(weights)
        return [w / total for w in weights]


def _truncate(text: str, stops: tuple[str, ...]) -> str:
    cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)
    return text[:cut] if cut >= 0 else text


def _short(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 300 else text[:297] + "..."
