"""AdamW for one adapter: Tinker's `AdamParams` per step, global-norm clipping, portable state.

`torch.optim.AdamW` already is Tinker's optimizer (decoupled weight decay, bias correction), so
each step just writes the request's hyperparameters into the param group before stepping.
Optimizer state is exported keyed by the adapter's slot-free parameter names, so a checkpoint
loads into a fresh adapter slot and continuing is bit-for-bit an uninterrupted run.
"""

from __future__ import annotations

import torch

from tinker_chief.engine.backend import AdamStep, InvalidRequestError, check_adam_step

_STATE_FIELDS = ("step", "exp_avg", "exp_avg_sq")


class AdapterOptimizer:
    """AdamW over named fp32 LoRA parameters."""

    def __init__(self, named_params: dict[str, torch.nn.Parameter]) -> None:
        self.names = list(named_params)
        self.params = list(named_params.values())
        self.adamw = torch.optim.AdamW(self.params, lr=0.0, foreach=False)

    def step(self, params: AdamStep) -> dict[str, float]:
        check_adam_step(params)
        grads = [p.grad for p in self.params if p.grad is not None]
        norm = (
            float(
                torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
            )
            if grads
            else 0.0
        )
        if params.grad_clip_norm > 0 and grads:
            torch.nn.utils.clip_grad_norm_(self.params, params.grad_clip_norm)
        group = self.adamw.param_groups[0]
        group.update(
            lr=params.learning_rate,
            betas=(params.beta1, params.beta2),
            eps=params.eps,
            weight_decay=params.weight_decay,
        )
        self.adamw.step()
        self.adamw.zero_grad(set_to_none=True)
        return {"grad_norm:mean": norm, "learning_rate:mean": params.learning_rate}

    def zero_grad(self) -> None:
        self.adamw.zero_grad(set_to_none=True)

    def export_state(self, key_of: dict[str, str]) -> dict[str, torch.Tensor]:
        """Flat tensors `<param key>::<field>` (key_of maps PEFT names to portable keys)."""
        flat = {}
        for name, param in zip(self.names, self.params):
            for field, value in self.adamw.state.get(param, {}).items():
                flat[f"{key_of[name]}::{field}"] = value.detach().to("cpu").clone()
        return flat

    def import_state(self, flat: dict[str, torch.Tensor], key_of: dict[str, str]) -> None:
        state: dict[int, dict[str, torch.Tensor]] = {}
        for index, name in enumerate(self.names):
            entry = {
                f: flat[f"{key_of[name]}::{f}"]
                for f in _STATE_FIELDS
                if f"{key_of[name]}::{f}" in flat
            }
            if entry and set(entry) != set(_STATE_FIELDS):
                raise InvalidRequestError(f"optimizer state for {key_of[name]} is incomplete")
            if entry:
                state[index] = entry
        saved = self.adamw.state_dict()
        saved["state"] = state
        self.adamw.load_state_dict(saved)
