"""One optimizer step per recipe, over a batch of item indices, through the SDK.

A `StepRunner` owns the recipe's items (datums, preference pairs, RL problems) and turns a
batch of indices into `forward_backward` + `optim_step` calls; the loop (`training.loop`)
owns ordering, schedule, checkpoints and logging. Supervised and distillation steps use the
`cross_entropy` loss on cookbook-built datums; DPO reuses the cookbook's `compute_dpo_loss`
through `forward_backward_custom`, with reference log-probs from the *base model's* sampler
(not a snapshot taken at start, as the cookbook's `train_dpo` does, so that a resumed run
keeps the same reference). RL lives in `training.rl`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import torch

if TYPE_CHECKING:
    import tinker


@dataclass(frozen=True)
class Concern:
    """What a recipe found that more steps cannot fix (RL without signal): stop, or warn and go
    on."""

    message: str
    stop: bool


class StepRunner(Protocol):
    """A recipe's training step; `run` returns metrics for `metrics.jsonl`; `concern` is asked
    after each step."""

    def __len__(self) -> int: ...

    def run(
        self,
        client: tinker.TrainingClient,
        indices: list[int],
        adam: tinker.AdamParams,
        step: int,
    ) -> dict[str, float]: ...

    def concern(self) -> Concern | None: ...


class _NoConcerns:
    """Supervised recipes learn from every batch: nothing to watch for."""

    def concern(self) -> Concern | None:
        return None


def submit_and_wait(
    client: tinker.TrainingClient,
    batch: list[tinker.Datum],
    adam: tinker.AdamParams,
    loss_fn: tinker.types.LossFnType,
) -> tinker.ForwardBackwardOutput:
    """One `forward_backward` with the built-in `loss_fn`, then `optim_step`."""
    # Both requests are queued before waiting so the engine never idles between them.
    fwd_bwd = client.forward_backward(batch, loss_fn=loss_fn)
    optim = client.optim_step(adam)
    result = fwd_bwd.result()
    optim.result()
    return result


def batch_tokens(batch: list[tinker.Datum]) -> int:
    return int(sum(datum.model_input.length for datum in batch))


class SupervisedSteps(_NoConcerns):
    """Chat SFT and prompt distillation: cross-entropy on the renderer's trained tokens."""

    def __init__(self, data: list[tinker.Datum]) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def run(
        self,
        client: tinker.TrainingClient,
        indices: list[int],
        adam: tinker.AdamParams,
        step: int,
    ) -> dict[str, float]:
        from tinker_cookbook.supervised.common import compute_mean_nll

        batch = [self.data[i] for i in indices]
        result = submit_and_wait(client, batch, adam, "cross_entropy")
        logprobs = [output["logprobs"] for output in result.loss_fn_outputs]
        weights = [datum.loss_fn_inputs["weights"] for datum in batch]
        return {
            "train/loss": compute_mean_nll(logprobs, weights),
            "train/tokens": batch_tokens(batch),
        }


class DPOSteps(_NoConcerns):
    """DPO on interleaved (chosen, rejected) datums, the cookbook's loss and metrics."""

    def __init__(
        self, data: list[tinker.Datum], reference: tinker.SamplingClient, beta: float
    ) -> None:
        if len(data) % 2:
            raise ValueError("DPO data must interleave chosen and rejected datums")
        self.data = data
        self.reference = reference  # a SamplingClient on the base model
        self.beta = beta

    def __len__(self) -> int:
        return len(self.data) // 2

    def _reference_logprobs(self, batch: list[tinker.Datum]) -> list[torch.Tensor]:
        async def gather() -> list[list[float | None]]:
            sequences = [
                d.model_input.append_int(int(d.loss_fn_inputs["target_tokens"].data[-1]))
                for d in batch
            ]
            return await asyncio.gather(*[self.reference.compute_logprobs(s) for s in sequences])

        return [torch.tensor(lp[1:], dtype=torch.float32) for lp in asyncio.run(gather())]

    def run(
        self,
        client: tinker.TrainingClient,
        indices: list[int],
        adam: tinker.AdamParams,
        step: int,
    ) -> dict[str, float]:
        from tinker_cookbook.preference.train_dpo import compute_dpo_loss

        batch = [self.data[2 * i + k] for i in indices for k in (0, 1)]
        ref = self._reference_logprobs(batch)
        weights = [
            torch.tensor(d.loss_fn_inputs["weights"].data, dtype=torch.float32) for d in batch
        ]

        def dpo_loss(
            data: list[tinker.Datum], logprobs: list[torch.Tensor]
        ) -> tuple[torch.Tensor, dict[str, float]]:
            seq = [torch.dot(lp.float(), w) for lp, w in zip(logprobs, weights, strict=True)]
            seq_ref = [torch.dot(r, w) for r, w in zip(ref, weights, strict=True)]
            return compute_dpo_loss(seq[0::2], seq[1::2], seq_ref[0::2], seq_ref[1::2], self.beta)

        fwd_bwd = client.forward_backward_custom(batch, dpo_loss)
        optim = client.optim_step(adam)
        metrics = dict(fwd_bwd.result().metrics)
        optim.result()
        return {
            "train/loss": float(metrics.get("dpo_loss", float("nan"))),
            "train/pair_accuracy": float(metrics.get("accuracy", float("nan"))),
            "train/margin": float(metrics.get("margin", float("nan"))),
            # `forward_backward_custom` is two passes on the wire (a forward for the log-probs,
            # then a forward-backward with the loss's gradients), each billed as training.
            "train/tokens": 2 * batch_tokens(batch),
        }
