"""Token metering: how many tokens a sampling client prefilled and sampled (what Tinker bills).

`metered(client, usage)` wraps an SDK `SamplingClient` so that every request through it adds to
a `TokenUsage`: a `sample` request prefills its prompt once (whatever `num_samples`) and samples
every token of every returned sequence; a `compute_logprobs` request prefills the whole
sequence it scores and samples one token (the SDK sends it as a sample of `max_tokens=1`).
Counts are what the sampler saw, taken from the requests and responses, so they hold for the
local engine and Tinker's cloud alike. Training (RL rollouts, DPO reference
log-probs, inline evals, distillation's teacher) and `chief eval` meter through this one wrapper.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, TypedDict, Unpack, cast

if TYPE_CHECKING:
    import tinker

PREFILL_KEY = "prefill/tokens"
SAMPLE_KEY = "sample/tokens"


class TokenUsage:
    """Running totals of prefilled and sampled tokens; safe to add to from several threads."""

    def __init__(self) -> None:
        self.prefill = 0
        self.sample = 0
        self._lock = threading.Lock()

    def add(self, prefill: int = 0, sample: int = 0) -> None:
        with self._lock:
            self.prefill += prefill
            self.sample += sample

    def counts(self) -> tuple[int, int]:
        with self._lock:
            return self.prefill, self.sample

    def since(self, before: tuple[int, int]) -> dict[str, int]:
        """The tokens added since `before` (a `counts()`), as metrics.jsonl keys."""
        prefill, sample = self.counts()
        return {PREFILL_KEY: prefill - before[0], SAMPLE_KEY: sample - before[1]}


class SampleOptions(TypedDict, total=False):
    """`SamplingClient.sample`'s optional arguments, passed through as given."""

    include_prompt_logprobs: bool
    topk_prompt_logprobs: int
    topk_sample_logprobs: int
    target_prompt_logprobs: tinker.TensorData | None
    prompt_alt_tokens_k: int
    prompt_logprobs_last_n: int | None


class LogprobOptions(TypedDict, total=False):
    """`SamplingClient.compute_logprobs`' optional arguments, passed through as given."""

    prompt_logprobs_last_n: int | None


class _CountedFuture:
    """An SDK future whose result is counted once, whether it is awaited or `result()`-ed."""

    def __init__(
        self,
        future: tinker.APIFuture[tinker.SampleResponse],
        count: Callable[[tinker.SampleResponse], None],
    ) -> None:
        self._future = future
        self._count = count
        self._counted = False

    def _done(self, value: tinker.SampleResponse) -> tinker.SampleResponse:
        if not self._counted:
            self._counted = True
            self._count(value)
        return value

    def result(self, timeout: float | None = None) -> tinker.SampleResponse:
        return self._done(self._future.result(timeout))

    async def result_async(self, timeout: float | None = None) -> tinker.SampleResponse:
        return self._done(await self._future.result_async(timeout))

    def __await__(self) -> Generator[None, None, tinker.SampleResponse]:
        return self.result_async().__await__()


def _sampled(response: tinker.SampleResponse) -> int:
    return sum(len(sequence.tokens) for sequence in response.sequences)


class MeteredSamplingClient:
    """A `SamplingClient` that counts its requests' tokens; everything else passes through."""

    def __init__(self, client: tinker.SamplingClient, usage: TokenUsage) -> None:
        self._client = client
        self.usage = usage

    def __getattr__(self, name: str) -> object:
        return getattr(self._client, name)

    def sample(
        self,
        prompt: tinker.ModelInput,
        num_samples: int,
        sampling_params: tinker.SamplingParams,
        **options: Unpack[SampleOptions],
    ) -> _CountedFuture:
        self.usage.add(prefill=prompt.length)
        return _CountedFuture(
            self._client.sample(prompt, num_samples, sampling_params, **options),
            lambda response: self.usage.add(sample=_sampled(response)),
        )

    async def sample_async(
        self,
        prompt: tinker.ModelInput,
        num_samples: int,
        sampling_params: tinker.SamplingParams,
        **options: Unpack[SampleOptions],
    ) -> tinker.SampleResponse:
        return await self.sample(prompt, num_samples, sampling_params, **options)

    def compute_logprobs(
        self, prompt: tinker.ModelInput, **options: Unpack[LogprobOptions]
    ) -> tinker.APIFuture[list[float | None]]:
        # The SDK sends it as a sample with max_tokens=1: the server samples (and bills) one token.
        self.usage.add(prefill=prompt.length, sample=1)
        return self._client.compute_logprobs(prompt, **options)

    async def compute_logprobs_async(
        self, prompt: tinker.ModelInput, **options: Unpack[LogprobOptions]
    ) -> list[float | None]:
        return await self.compute_logprobs(prompt, **options)


def metered(client: tinker.SamplingClient, usage: TokenUsage) -> tinker.SamplingClient:
    """`client` counting into `usage` (a client already metered into `usage` is returned as is).

    The wrapper answers every `SamplingClient` call (the two that sample itself, the rest by
    passing them through), so it goes wherever the SDK's client goes and keeps its type.
    """
    if isinstance(client, MeteredSamplingClient) and client.usage is usage:
        return client
    return cast("tinker.SamplingClient", MeteredSamplingClient(client, usage))
