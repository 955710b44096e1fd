"""The contract between the protocol server and the compute backend.

The server decodes HTTP/protobuf into these plain dataclasses, orders and batches requests,
and calls a `ComputeBackend`; the backend never sees HTTP, sessions or futures. Keeping the
boundary in plain numpy/dataclass types lets each side be tested alone (the compute side
in-process against PEFT, the server side against the real SDK).

All methods are called from a single worker thread, one at a time: the backend need not be
thread-safe. Errors caused by the request (bad token ids, too long, unknown adapter) are
raised as `InvalidRequestError`/`NotFoundError` with a sentence the server forwards as a 4xx.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from tinker_chief.errors import EngineError


class InvalidRequestError(EngineError):
    """The request is malformed or out of range (HTTP 400)."""

    status_code = 400


class NotFoundError(EngineError):
    """A model, adapter or checkpoint the request names does not exist (HTTP 404)."""

    status_code = 404


class ConflictError(EngineError):
    """The request would overwrite something that exists (HTTP 409)."""

    status_code = 409


@dataclass(frozen=True)
class BaseModelInfo:
    name: str  # canonical catalog name, used as `base_model`
    max_context_length: int
    tokenizer_dir: str  # local directory: the SDK's get_tokenizer() loads it offline
    arch: str  # e.g. "llama"


def size_text(size: int) -> str:
    """Bytes for a person: 24.0 GiB, 512.0 KiB."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"


def check_kv_cache_fits(
    prompt_length: int,
    max_tokens: int,
    bytes_per_token: int,
    budget: int,
) -> None:
    """Refuse a sample whose KV cache alone would exceed `budget` bytes (the engine's sampling
    memory), saying how many tokens per sample fit. Several samples that do not fit together
    run one after another, so only a single sample can be too large."""
    tokens = prompt_length + max_tokens
    if tokens * bytes_per_token <= budget:
        return
    fit = budget // bytes_per_token
    room = fit - prompt_length
    advice = f"max_tokens {room} with this prompt" if room > 0 else "a shorter prompt"
    raise InvalidRequestError(
        f"one sample of prompt ({prompt_length} tokens) + max_tokens ({max_tokens}) needs "
        f"{size_text(tokens * bytes_per_token)} of KV cache ({size_text(bytes_per_token)} "
        f"per token), more than this engine's sampling memory of {size_text(budget)}: "
        f"at most {fit} tokens per sample fit ({advice})"
    )


@dataclass(frozen=True)
class LoraSettings:
    rank: int
    seed: int | None = None
    train_mlp: bool = True
    train_attn: bool = True
    train_unembed: bool = True
    alpha: int = 32  # Tinker sends no alpha on the wire; 32 matches its exported adapters


@dataclass(frozen=True)
class AdamStep:
    learning_rate: float
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-12
    weight_decay: float = 0.0
    grad_clip_norm: float = 0.0  # 0 disables clipping


# A LoRA learning rate is ~1e-4..1e-3 (the cookbook's rule); past 1 an Adam step moves every
# weight by about the learning rate itself, so a larger one is a typo, never a setting.
MAX_LEARNING_RATE = 1.0
_ADAM_RANGES: dict[str, tuple[Callable[[float], bool], str]] = {
    "learning_rate": (lambda v: 0 <= v <= MAX_LEARNING_RATE, "between 0 and 1"),
    "beta1": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "beta2": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "eps": (lambda v: 0 < v <= 1, "in (0, 1]"),
    "weight_decay": (lambda v: 0 <= v <= 1, "between 0 and 1"),
    "grad_clip_norm": (lambda v: v >= 0, "a finite number >= 0 (0 turns clipping off)"),
}


def check_adam_step(step: AdamStep) -> None:
    """Raise InvalidRequestError naming the first hyperparameter out of range, and its range."""
    for name, (allowed, described) in _ADAM_RANGES.items():
        value = getattr(step, name)
        if not (math.isfinite(value) and allowed(value)):
            raise InvalidRequestError(f"adam_params.{name} must be {described}, got {value!r}")


@dataclass
class DatumArrays:
    """One datum: input tokens and per-token loss inputs, all aligned with `tokens` (length N)."""

    tokens: np.ndarray  # int64 [N]
    # target_tokens int64[N], weights/logprobs/advantages float32[N].
    loss_fn_inputs: dict[str, np.ndarray]


LossFn = Literal["cross_entropy", "importance_sampling", "ppo", "cispo", "dro", "gspo"]


@dataclass
class ForwardBackwardResult:
    outputs: list[dict[str, np.ndarray]]  # per datum, at least {"logprobs": float32[N]}
    metrics: dict[str, float]  # keys are "name:reduction", e.g. "loss:sum"


@dataclass
class ForwardBackwardCall:
    """One client's `forward_backward` request, as `forward_backward_many` takes several."""

    model_id: str
    data: list[DatumArrays]
    loss_fn: str
    loss_fn_config: dict[str, float | str]
    forward_only: bool


@dataclass(frozen=True)
class SamplingSettings:
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1
    seed: int | None = None
    stop_strings: tuple[str, ...] = ()
    # EOS is included by the server unless the client sent stop=[].
    stop_tokens: tuple[int, ...] = ()


@dataclass(frozen=True)
class SampleRequest:
    sampler: str  # a key from load_sampler/snapshot_for_sampling, or a base model name
    prompt: tuple[int, ...]
    num_samples: int
    settings: SamplingSettings
    prompt_logprobs: bool = False
    topk_prompt_logprobs: int = 0


@dataclass
class SampledSequence:
    tokens: list[int]
    logprobs: list[float]
    stop_reason: Literal["stop", "length"]


@dataclass
class SampleResult:
    sequences: list[SampledSequence]
    prompt_logprobs: list[float | None] | None = None  # position 0 is None
    topk_prompt_logprobs: list[list[tuple[int, float]] | None] | None = None
    extra: dict[str, float] = field(default_factory=dict)


# Called with a request's place in a `sample` call and its result, as soon as it is ready.
ResultHook = Callable[[int, "SampleResult"], None]


class ComputeBackend(Protocol):
    """What the server needs from the model side."""

    device: str
    sampling_memory: int  # bytes of KV cache sampling may hold at once (`check_kv_cache_fits`)

    def base_models(self) -> list[BaseModelInfo]: ...

    def kv_bytes_per_token(self, base_model: str) -> int:
        """KV-cache bytes one position of one sampled sequence takes on this base model."""

    def create_training_model(self, model_id: str, base_model: str, lora: LoraSettings) -> None: ...

    def forward_backward(
        self,
        model_id: str,
        data: list[DatumArrays],
        loss_fn: str,
        loss_fn_config: dict[str, float | str],
        forward_only: bool,
    ) -> ForwardBackwardResult: ...

    def forward_backward_many(
        self, calls: list[ForwardBackwardCall]
    ) -> list[ForwardBackwardResult | Exception]:
        """Several clients' calls at once (sharing work where the backend can), each call's
        outcome in order: its result, or the error that call alone would have raised."""

    def optim_step(self, model_id: str, params: AdamStep) -> dict[str, float]: ...

    def save_training_state(self, model_id: str, directory: Path) -> None:
        """Write a PEFT adapter directory plus optimizer state into `directory` (exists, empty)."""

    def load_training_state(
        self, model_id: str, directory: Path, with_optimizer: bool
    ) -> LoraSettings:
        """Create `model_id` from a saved training state; returns its LoRA spec."""

    def save_sampler_weights(self, model_id: str, directory: Path) -> None:
        """Write a PEFT adapter directory (weights only) into `directory`."""

    def snapshot_for_sampling(self, model_id: str) -> str:
        """Copy the current adapter into memory for sampling; return a sampler key."""

    def live_sampler(self, model_id: str) -> str:
        """A sampler key for the training adapter itself: samples always use its current weights
        (`kind="inflight"`); it stops working once the model is unloaded."""

    def load_sampler(self, directory: Path) -> str:
        """Load a saved adapter directory for sampling (cached); return a sampler key."""

    def sample(
        self, requests: list[SampleRequest], on_result: ResultHook | None = None
    ) -> list[SampleResult]:
        """Serve several requests in as few batched forward passes as possible; every result in
        order. `on_result(index, result)` gets each one as soon as it is ready, before the call
        returns (a short answer need not wait for the longest one decoded beside it)."""

    def unload_model(self, model_id: str) -> None: ...
