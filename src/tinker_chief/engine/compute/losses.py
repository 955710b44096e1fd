"""The SDK's built-in losses, each vectorised over a padded batch.

Every function takes `lp` (logprobs of the target tokens under the current model, [B, T]),
the loss inputs as [B, T] tensors, a 0/1 `mask` of real positions and the request's
`loss_fn_config`, and returns the scalar loss to backpropagate: a plain sum over tokens, as
Tinker defines it (normalisation is the client's job, done through `weights`/`advantages`).
Formulas follow reference section 8; clip thresholds may come per token in the inputs
(the SDK's dtype map lists them) or from `loss_fn_config`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

from tinker_chief.engine.backend import InvalidRequestError

Tensors = Mapping[str, torch.Tensor]
Config = Mapping[str, float | str]

_POLICY_INPUTS = ("target_tokens", "logprobs", "advantages")


@dataclass(frozen=True)
class LossDef:
    inputs: tuple[str, ...]
    fn: Callable[[torch.Tensor, Tensors, torch.Tensor, Config], torch.Tensor]


def _number(config: Config, key: str, default: float | None) -> float:
    value = config.get(key, default)
    if value is None:
        raise InvalidRequestError(f"loss_fn_config must set {key!r} for this loss")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InvalidRequestError(
            f"loss_fn_config[{key!r}] must be a number, got {value!r}"
        ) from None


def _threshold(inputs: Tensors, config: Config, key: str, default: float) -> torch.Tensor:
    # Always a tensor: torch.clamp refuses a number for one bound and a tensor for the other,
    # which is what a request with only one per-token threshold would give.
    if key in inputs:
        return inputs[key]
    like = inputs["logprobs"]
    return torch.tensor(_number(config, key, default), dtype=like.dtype, device=like.device)


def _ratio(lp: torch.Tensor, inputs: Tensors) -> torch.Tensor:
    return torch.exp(lp - inputs["logprobs"])


def cross_entropy(
    lp: torch.Tensor, inputs: Tensors, mask: torch.Tensor, config: Config
) -> torch.Tensor:
    return -(lp * inputs["weights"] * mask).sum()


def importance_sampling(
    lp: torch.Tensor, inputs: Tensors, mask: torch.Tensor, config: Config
) -> torch.Tensor:
    return -(_ratio(lp, inputs) * inputs["advantages"] * mask).sum()


def ppo(lp: torch.Tensor, inputs: Tensors, mask: torch.Tensor, config: Config) -> torch.Tensor:
    ratio = _ratio(lp, inputs)
    low = _threshold(inputs, config, "clip_low_threshold", 0.8)
    high = _threshold(inputs, config, "clip_high_threshold", 1.2)
    advantages = inputs["advantages"]
    clipped = torch.clamp(ratio, low, high)
    return -(torch.minimum(ratio * advantages, clipped * advantages) * mask).sum()


def cispo(lp: torch.Tensor, inputs: Tensors, mask: torch.Tensor, config: Config) -> torch.Tensor:
    low = _threshold(inputs, config, "clip_low_threshold", 0.0)
    high = _threshold(inputs, config, "clip_high_threshold", 4.0)
    weight = torch.clamp(_ratio(lp, inputs), low, high).detach()
    return -(weight * inputs["advantages"] * lp * mask).sum()


def gspo(lp: torch.Tensor, inputs: Tensors, mask: torch.Tensor, config: Config) -> torch.Tensor:
    """GSPO-token, as Tinker defines it: each sequence's ratio is the geometric mean of its token
    ratios over `sequence_ratio_mask` (default: the tokens with a nonzero advantage), and every
    token carries that value with its own logprob's gradient, clipped like ppo."""
    low = _threshold(inputs, config, "clip_low_threshold", 0.8)
    high = _threshold(inputs, config, "clip_high_threshold", 1.2)
    advantages = inputs["advantages"]
    marks = inputs.get("sequence_ratio_mask", advantages)
    in_ratio = (marks != 0) & (mask > 0)
    counts = in_ratio.sum(dim=1, keepdim=True).clamp(min=1)  # an empty mask gives ratio 1
    log_ratio = ((lp.detach() - inputs["logprobs"]) * in_ratio).sum(dim=1, keepdim=True) / counts
    ratio = torch.exp(log_ratio + lp - lp.detach())
    clipped = torch.clamp(ratio, low, high)
    return -(torch.minimum(ratio * advantages, clipped * advantages) * mask).sum()


def dro(lp: torch.Tensor, inputs: Tensors, mask: torch.Tensor, config: Config) -> torch.Tensor:
    beta = _number(config, "beta", None)
    penalty = 0.5 * beta * (lp - inputs["logprobs"]) ** 2
    return -((lp * inputs["advantages"] - penalty) * mask).sum()


LOSSES: dict[str, LossDef] = {
    "cross_entropy": LossDef(("target_tokens", "weights"), cross_entropy),
    "importance_sampling": LossDef(_POLICY_INPUTS, importance_sampling),
    "ppo": LossDef(_POLICY_INPUTS, ppo),
    "cispo": LossDef(_POLICY_INPUTS, cispo),
    "dro": LossDef(_POLICY_INPUTS, dro),
    "gspo": LossDef(_POLICY_INPUTS, gspo),
}
OPTIONAL_INPUTS = ("clip_low_threshold", "clip_high_threshold", "sequence_ratio_mask")


def loss_def(name: str) -> LossDef:
    if name not in LOSSES:
        raise InvalidRequestError(
            f"unsupported loss_fn {name!r}: this engine supports {', '.join(LOSSES)}"
        )
    return LOSSES[name]
