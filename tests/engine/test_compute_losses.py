"""Each SDK loss through TorchBackend equals its hand-written numpy formula (reference §8).

The backend's per-datum `logprobs` output is the `lp` of the formulas; the reported
`loss:sum` must equal the formula evaluated on it. Gradients of the clipped losses are checked
on the loss functions directly, where they can be compared with closed forms.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tinker_chief.engine.compute.losses import LOSSES

from compute_support import backend_with_model, sft_datum


@pytest.fixture(scope="module")
def backend_and_model():
    return backend_with_model(rank=4)


def policy_batch(seed: int, lp_shift: float):
    """Data whose sampler logprobs differ from the model's by up to +-lp_shift (ratios beyond the
    clips)."""
    rng = np.random.default_rng(seed)
    data = [sft_datum(rng, n) for n in (6, 10)]
    for datum in data:
        n = len(datum.tokens)
        datum.loss_fn_inputs.pop("weights")
        datum.loss_fn_inputs["advantages"] = rng.normal(0, 1, n).astype(np.float32)
        datum.loss_fn_inputs["logprobs"] = np.zeros(n, np.float32)  # replaced once lp is known
    return data, rng


def with_sampler_logprobs(backend, model_id, data, rng, lp_shift):
    scored = backend.forward_backward(model_id, data, "importance_sampling", {}, True).outputs
    for datum, out in zip(data, scored):
        datum.loss_fn_inputs["logprobs"] = (
            out["logprobs"] + rng.uniform(-lp_shift, lp_shift, out["logprobs"].shape)
        ).astype(np.float32)
    return [out["logprobs"] for out in scored]


def reference(name: str, lp: np.ndarray, inputs: dict, config: dict) -> float:
    if name == "cross_entropy":
        return float(-(lp * inputs["weights"]).sum())
    ratio = np.exp(lp - inputs["logprobs"])
    adv = inputs["advantages"]
    if name == "importance_sampling":
        return float(-(ratio * adv).sum())
    if name == "ppo":
        low, high = config.get("clip_low_threshold", 0.8), config.get("clip_high_threshold", 1.2)
        return float(-np.minimum(ratio * adv, np.clip(ratio, low, high) * adv).sum())
    if name == "cispo":
        low, high = config.get("clip_low_threshold", 0.0), config.get("clip_high_threshold", 4.0)
        return float(-(np.clip(ratio, low, high) * adv * lp).sum())
    if name == "dro":
        return float(-(lp * adv - 0.5 * config["beta"] * (lp - inputs["logprobs"]) ** 2).sum())
    if name == "gspo":  # one sequence ratio: the geometric mean over the ratio mask
        low, high = config.get("clip_low_threshold", 0.8), config.get("clip_high_threshold", 1.2)
        marked = inputs.get("sequence_ratio_mask", adv) != 0
        seq = np.exp((lp - inputs["logprobs"])[marked].mean()) if marked.any() else 1.0
        return float(-np.minimum(seq * adv, np.clip(seq, low, high) * adv).sum())
    raise AssertionError(name)


CASES = [
    ("importance_sampling", {}),
    ("ppo", {}),
    ("ppo", {"clip_low_threshold": 0.9, "clip_high_threshold": 1.05}),
    ("cispo", {}),
    ("cispo", {"clip_low_threshold": 0.5, "clip_high_threshold": 1.5}),
    ("dro", {"beta": 0.3}),
    ("gspo", {}),
    ("gspo", {"clip_low_threshold": 0.99, "clip_high_threshold": 1.01}),
]


@pytest.mark.parametrize(("name", "config"), CASES)
def test_policy_losses_match_reference(backend_and_model, name, config):
    backend, model_id = backend_and_model
    data, rng = policy_batch(1, 0.5)
    lps = with_sampler_logprobs(backend, model_id, data, rng, 0.5)
    result = backend.forward_backward(model_id, data, name, config, True)
    expected = sum(reference(name, lp, d.loss_fn_inputs, config) for lp, d in zip(lps, data))
    assert result.metrics["loss:sum"] == pytest.approx(expected, rel=1e-5, abs=1e-5)


def test_cross_entropy_matches_reference(backend_and_model):
    backend, model_id = backend_and_model
    data = [sft_datum(np.random.default_rng(2), n) for n in (5, 9)]
    result = backend.forward_backward(model_id, data, "cross_entropy", {}, True)
    expected = sum(
        reference("cross_entropy", o["logprobs"], d.loss_fn_inputs, {})
        for o, d in zip(result.outputs, data)
    )
    assert result.metrics["loss:sum"] == pytest.approx(expected, rel=1e-6)


def grad_of(name: str, lp: torch.Tensor, inputs: dict, config: dict) -> torch.Tensor:
    lp = lp.clone().requires_grad_(True)
    LOSSES[name].fn(lp, inputs, torch.ones_like(lp), config).backward()
    return lp.grad


def test_clipped_losses_have_the_documented_gradients():
    lp = torch.tensor([-1.0, -2.0, -0.5, -3.0])
    sampler = torch.tensor([-1.5, -1.0, -0.5, -2.9])  # ratios e^0.5, e^-1, 1, e^-0.1
    adv = torch.tensor([1.0, -1.0, 2.0, -0.5])
    inputs = {"logprobs": sampler, "advantages": adv}
    ratio = torch.exp(lp - sampler)
    # cispo: stop-gradient on the clipped ratio, so d/dlp = -clip(r) * A
    torch.testing.assert_close(
        grad_of("cispo", lp, inputs, {}), -torch.clamp(ratio, 0.0, 4.0) * adv
    )
    # ppo: the clipped branch (when it is the min) has zero gradient; otherwise d/dlp = -r * A
    clipped = torch.clamp(ratio, 0.8, 1.2)
    takes_unclipped = ratio * adv <= clipped * adv
    expected = torch.where(takes_unclipped, -ratio * adv, torch.zeros_like(lp))
    torch.testing.assert_close(grad_of("ppo", lp, inputs, {}), expected)
    assert not takes_unclipped.all(), "the case must exercise the clip"
    # importance sampling: d/dlp = -r * A
    torch.testing.assert_close(grad_of("importance_sampling", lp, inputs, {}), -ratio * adv)


def test_per_token_clip_thresholds_override_config(backend_and_model):
    backend, model_id = backend_and_model
    data, rng = policy_batch(3, 0.5)
    lps = with_sampler_logprobs(backend, model_id, data, rng, 0.5)
    for datum in data:
        n = len(datum.tokens)
        datum.loss_fn_inputs["clip_low_threshold"] = np.full(n, 0.95, np.float32)
        datum.loss_fn_inputs["clip_high_threshold"] = np.full(n, 1.05, np.float32)
    result = backend.forward_backward(model_id, data, "ppo", {"clip_low_threshold": 0.1}, True)
    config = {"clip_low_threshold": 0.95, "clip_high_threshold": 1.05}
    expected = sum(reference("ppo", lp, d.loss_fn_inputs, config) for lp, d in zip(lps, data))
    assert result.metrics["loss:sum"] == pytest.approx(expected, rel=1e-5, abs=1e-5)


@pytest.mark.parametrize("name", ["ppo", "cispo", "gspo"])
def test_one_per_token_threshold_mixes_with_the_other_from_config(name):
    lp = torch.tensor([[-1.0, -2.0, -0.5]])
    sampler = torch.tensor([[-1.5, -1.0, -0.5]])
    inputs = {
        "logprobs": sampler,
        "advantages": torch.tensor([[1.0, -1.0, 2.0]]),
        "clip_high_threshold": torch.full_like(lp, 1.1),
    }
    config = {"clip_low_threshold": 0.9, "clip_high_threshold": 99.0}
    mixed = LOSSES[name].fn(lp, inputs, torch.ones_like(lp), config)
    both_in_config = LOSSES[name].fn(
        lp,
        {k: inputs[k] for k in ("logprobs", "advantages")},
        torch.ones_like(lp),
        {"clip_low_threshold": 0.9, "clip_high_threshold": 1.1},
    )
    torch.testing.assert_close(mixed, both_in_config)


def test_gspo_against_a_hand_computed_value():
    # Sequence 0 marks its first two tokens: log ratios 0.5 and -1.0, mean -0.25, so every token
    # of it carries e^-0.25 ~ 0.7788 -> clipped to 0.8. Sequence 1 (no mask input: its nonzero
    # advantages mark the tokens) has log ratios 0.1 and 0.3: e^0.2 ~ 1.2214 -> clipped to 1.2.
    lp = torch.tensor([[-1.0, -2.0, -0.5], [-1.0, -1.0, -3.0]])
    inputs = {
        "logprobs": torch.tensor([[-1.5, -1.0, -0.5], [-1.1, -1.3, -3.0]]),
        "advantages": torch.tensor([[1.0, -2.0, 0.5], [1.0, 1.0, 0.0]]),
        "sequence_ratio_mask": torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0]]),
    }
    s0 = np.exp(-0.25)  # sequence 1's e^0.2 is clipped to 1.2 below
    # min(s*A, clip(s)*A): A=1 -> 0.7788 (unclipped); A=-2 -> -2*0.8; A=0.5 -> 0.5*0.7788;
    # sequence 1: A=1 twice -> 1.2 each (clipped); A=0 -> 0.
    expected = -(s0 * 1.0 - 0.8 * 2.0 + s0 * 0.5 + 1.2 + 1.2)
    loss = LOSSES["gspo"].fn(lp, inputs, torch.ones_like(lp), {})
    assert float(loss) == pytest.approx(expected, rel=1e-6)
    assert float(loss) == pytest.approx(-1.9682012, rel=1e-6)
    without_mask = {k: v for k, v in inputs.items() if k != "sequence_ratio_mask"}
    # Sequence 0 without a mask counts all three tokens (all advantages are nonzero): mean -1/6,
    # e^(-1/6) ~ 0.8465 lies inside the clip range, so each token takes s*A.
    s0_all = np.exp(-1.0 / 6)
    expected_all = -(s0_all * (1.0 - 2.0 + 0.5) + 1.2 + 1.2)
    assert float(LOSSES["gspo"].fn(lp, without_mask, torch.ones_like(lp), {})) == pytest.approx(
        expected_all, rel=1e-6
    )


def test_gspo_gradient_is_the_sequence_ratio_times_the_advantage():
    # GSPO-token: d loss / d lp_t = -s * A_t where the unclipped branch is the min, else 0; no
    # gradient flows through the sequence ratio itself (it is a stop-gradient value).
    lp = torch.tensor([[-1.0, -2.0, -0.5, -3.0]])
    inputs = {
        "logprobs": torch.tensor([[-1.2, -2.1, -0.4, -3.0]]),  # log ratios 0.2, 0.1, -0.1, 0
        "advantages": torch.tensor([[1.0, -1.0, 2.0, -0.5]]),
    }
    seq = torch.exp((lp - inputs["logprobs"]).mean())  # all advantages nonzero: all tokens count
    grad = grad_of("gspo", lp, inputs, {"clip_low_threshold": 0.9, "clip_high_threshold": 1.1})
    torch.testing.assert_close(grad, -seq * inputs["advantages"])
    clipped = grad_of("gspo", lp, inputs, {"clip_low_threshold": 1.5, "clip_high_threshold": 2.0})
    takes_unclipped = seq * inputs["advantages"] <= 1.5 * inputs["advantages"]
    assert not takes_unclipped.all(), "the case must exercise the clip"
    torch.testing.assert_close(
        clipped, torch.where(takes_unclipped, -seq * inputs["advantages"], torch.zeros_like(lp))
    )
