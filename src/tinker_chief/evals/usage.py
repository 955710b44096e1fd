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
from collections.abc import Generator
from typing import Any

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


class _CountedFuture:
    """An SDK future whose result is counted once, whether it is awaited or `result()`-ed."""

    def __init__(self, future: Any, count: Any) -> None:
        self._future = future
        self._count = count
        self._counted = False

    def _done(self, value: Any) -> Any:
        if not self._counted:
            self._counted = True
            self._count(value)
        return value

    def result(self, timeout: float | None = None) -> Any:
        return self._done(self._future.result(timeout))

    async def result_async(self, timeout: float | None = None) -> Any:
        return self._done(await self._future.result_async(timeout))

    def __await__(self) -> Generator[Any, None, Any]:
        return self.result_async().__await__()


def _sampled(response: Any) -> int:
    return sum(len(sequence.tokens) for sequence in response.sequences)


class MeteredSamplingClient:
    """A `SamplingClient` that counts its requests' tokens; everything else passes through."""

    def __init__(self, client: Any, usage: TokenUsage) -> None:
        self._client = client
        self.usage = usage

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def sample(self, prompt: Any, *args: Any, **kwargs: Any) -> Any:
        self.usage.add(prefill=prompt.length)
        return _CountedFuture(
            self._client.sample(prompt, *args, **kwargs), lambda response: self.usage.add(sample=_sampled(response))
        )

    async def sample_async(self, prompt: Any, *args: Any, **kwargs: Any) -> Any:
        return await self.sample(prompt, *args, **kwargs)

    def compute_logprobs(self, prompt: Any, *args: Any, **kwargs: Any) -> Any:
        # The SDK sends it as a sample with max_tokens=1: the server samples (and bills) one token.
        self.usage.add(prefill=prompt.length, sample=1)
        return self._client.compute_logprobs(prompt, *args, **kwargs)

    async def compute_logprobs_async(self, prompt: Any, *args: Any, **kwargs: Any) -> Any:
        return await self.compute_logprobs(prompt, *args, **kwargs)


def metered(client: Any, usage: TokenUsage) -> Any:
    """`client` counting into `usage` (a client already metered into `usage` is returned as is)."""
    if isinstance(client, MeteredSamplingClient) and client.usage is usage:
        return client
    return MeteredSamplingClient(client, usage)
