"""RL with verifiable rewards: one on-policy step per batch of `{"prompt", "answer"}` problems.

Each step snapshots the current policy (`save_weights_and_get_sampling_client`), samples a
group of `group_size` answers per problem, grades each with an evals grader (reward 1.0 when
correct), centres rewards within the group (the cookbook's `compute_advantages` rule, no std
normalisation), optionally adds the cookbook's KL penalty to the base model
(`incorporate_kl_penalty`), and trains with the `importance_sampling` loss on the sampled
tokens. We do not run the cookbook's `rl.train` loop because it owns checkpointing and
logging itself; here sampling seeds derive from (seed, step, problem), so a resumed run
samples exactly what an uninterrupted run would have.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import tinker

from tinker_chief.evals.graders.base import GradeInput, TextGenerator, Verdict
from tinker_chief.evals.usage import TokenUsage, metered
from tinker_chief.planning.config import RLConfig
from tinker_chief.training.data import Problem
from tinker_chief.training.steps import Concern, submit_and_wait

if TYPE_CHECKING:
    from tinker_cookbook.renderers import Message, Renderer


def _datum(
    prompt: tinker.ModelInput, tokens: list[int], logprobs: list[float], advantage: float
) -> tinker.Datum:
    """Prompt + sampled tokens, shifted; advantages and sampling logprobs only on sampled tokens."""
    prompt_tokens = prompt.to_ints()
    full = prompt_tokens + tokens
    n_prompt = len(prompt_tokens) - 1  # positions whose target is still a prompt token
    zeros = [0.0] * n_prompt
    return tinker.Datum(
        model_input=tinker.ModelInput.from_ints(full[:-1]),
        loss_fn_inputs={
            "target_tokens": tinker.TensorData(data=full[1:], dtype="int64", shape=[len(full) - 1]),
            "logprobs": tinker.TensorData(
                data=zeros + list(logprobs), dtype="float32", shape=[len(full) - 1]
            ),
            "advantages": tinker.TensorData(
                data=zeros + [advantage] * len(tokens), dtype="float32", shape=[len(full) - 1]
            ),
            "mask": tinker.TensorData(
                data=zeros + [1.0] * len(tokens), dtype="float32", shape=[len(full) - 1]
            ),
        },
    )


class RLSteps:
    """Group sampling, group-centred advantages, importance-sampling loss."""

    def __init__(
        self,
        problems: list[Problem],
        renderer: Renderer,
        settings: RLConfig,
        seed: int,
        base_sampler: tinker.SamplingClient | None = None,
        usage: TokenUsage | None = None,
        judge: TextGenerator | None = None,
    ) -> None:
        from tinker_chief.evals.graders import make_grader

        self.problems = problems
        self.renderer = renderer
        self.settings = settings
        self.seed = seed
        self.base_sampler = base_sampler  # needed only with a KL penalty
        self.grader = make_grader(settings.grader, judge=judge)
        # Rollouts' prefilled and sampled tokens (the loop logs them).
        self.usage = usage or TokenUsage()
        self.signal = SignalCheck(settings)

    def __len__(self) -> int:
        return len(self.problems)

    def _text(self, tokens: list[int]) -> str:
        message, _ = self.renderer.parse_response(tokens)
        content = message.get("content")
        return content if isinstance(content, str) else ""

    def _rewards(
        self, problem: Problem, sequences: Sequence[tinker.SampledSequence]
    ) -> list[float]:
        """1.0 per correct answer. Through `grade()`, the contract every grader keeps (not only
        rule graders)."""
        question = next(
            (m["content"] for m in reversed(problem.prompt) if m.get("role") == "user"), ""
        )
        items = [
            GradeInput(str(question), self._text(list(s.tokens)), problem.answer) for s in sequences
        ]

        async def grade_all() -> list[Verdict]:
            return list(await asyncio.gather(*(self.grader.grade(item) for item in items)))

        return [1.0 if verdict.correct else 0.0 for verdict in asyncio.run(grade_all())]

    def _rollouts(
        self, sampler: tinker.SamplingClient, problems: list[Problem], step: int
    ) -> list[tuple[tinker.ModelInput, Sequence[tinker.SampledSequence]]]:
        # A problem's `{"role", "content"}` turns are the cookbook's `Message` shape.
        chats = [cast("list[Message]", p.prompt) for p in problems]
        prompts = [self.renderer.build_generation_prompt(chat) for chat in chats]
        futures = [
            sampler.sample(
                prompt,
                num_samples=self.settings.group_size,
                sampling_params=tinker.SamplingParams(
                    max_tokens=self.settings.max_tokens,
                    temperature=self.settings.temperature,
                    stop=self.renderer.get_stop_sequences(),
                    seed=(self.seed * 1_000_003 + step * 10_007 + i) % (2**31),
                ),
            )
            for i, prompt in enumerate(prompts)
        ]
        return [
            (prompt, future.result().sequences)
            for prompt, future in zip(prompts, futures, strict=True)
        ]

    def rollouts(
        self, sampler: tinker.SamplingClient, problems: list[Problem], step: int
    ) -> list[Group]:
        """Sample and grade one group per problem (training steps and
        `chief plan --probe-rewards`)."""
        return [
            Group(
                prompt,
                sequences,
                self._rewards(problem, sequences),
                self._text(list(sequences[0].tokens)),
            )
            for problem, (prompt, sequences) in zip(
                problems, self._rollouts(sampler, problems, step), strict=True
            )
        ]

    def concern(self) -> Concern | None:
        reason = self.signal.take_reason()
        return Concern(reason, stop=self.settings.on_zero_signal == "stop") if reason else None

    def run(
        self,
        client: tinker.TrainingClient,
        indices: list[int],
        adam: tinker.AdamParams,
        step: int,
    ) -> dict[str, float]:
        problems = [self.problems[i] for i in indices]
        sampler = metered(client.save_weights_and_get_sampling_client().result(), self.usage)
        data: list[tinker.Datum] = []
        rewards_all: list[float] = []
        groups = self.rollouts(sampler, problems, step)
        for group in groups:
            prompt, sequences, rewards = group.prompt, group.sequences, group.rewards
            mean = sum(rewards) / len(rewards)
            rewards_all += rewards
            for seq, reward in zip(sequences, rewards, strict=True):
                if seq.tokens:
                    data.append(
                        _datum(
                            prompt,
                            list(seq.tokens),
                            list(seq.logprobs or [0.0] * len(seq.tokens)),
                            reward - mean,
                        )
                    )
        metrics: dict[str, float] = {}
        if self.settings.kl_penalty_coef > 0 and self.base_sampler is not None:
            from tinker_cookbook.rl.metrics import incorporate_kl_penalty

            metrics.update(
                asyncio.run(
                    incorporate_kl_penalty(
                        data, self.base_sampler, self.settings.kl_penalty_coef, 0.0
                    )
                )
            )
        for datum in data:  # `mask` is a client-side helper, never sent (as the cookbook does)
            datum.loss_fn_inputs.pop("mask", None)
        out = submit_and_wait(client, data, adam, self.settings.loss_fn)
        loss = out.metrics.get("loss:sum", float("nan"))
        metrics.update(
            {
                "train/loss": float(loss) / max(1, len(data)),
                "train/reward": sum(rewards_all) / max(1, len(rewards_all)),
                "train/tokens": sum(d.model_input.length for d in data),
                **signal_metrics(groups, self.settings.max_tokens),
            }
        )
        self.signal.observe(step, groups)
        return metrics


@dataclass(frozen=True)
class Group:
    """One problem's rollouts: the prompt, the sampled sequences, their rewards, a sample answer."""

    prompt: tinker.ModelInput
    sequences: Sequence[tinker.SampledSequence]
    rewards: list[float]
    example: str

    @property
    def has_signal(self) -> bool:
        """Rewards that differ within the group give non-zero advantages; equal ones teach
        nothing."""
        return len(set(self.rewards)) > 1


def signal_metrics(groups: list[Group], max_tokens: int) -> dict[str, float]:
    """Share of groups with a learning signal, and of rollouts cut off at max_tokens."""
    rollouts = [s for g in groups for s in g.sequences]
    cut = sum(1 for s in rollouts if len(s.tokens) >= max_tokens)
    return {
        "train/groups_with_signal": sum(g.has_signal for g in groups) / max(1, len(groups)),
        "train/truncated_fraction": cut / max(1, len(rollouts)),
    }


def zero_signal_message(groups: list[Group], settings: RLConfig) -> str:
    """That no group carried a signal, and the likely causes with their fixes (one paragraph)."""
    rewards = [r for g in groups for r in g.rewards]
    mean = sum(rewards) / max(1, len(rewards))
    cut = signal_metrics(groups, settings.max_tokens)["train/truncated_fraction"]
    example = next((g.example for g in groups if g.example.strip()), "")
    causes = []
    if mean == 0.0:
        causes.append(
            f"the grader `{settings.grader}` never said correct (e.g. it scored "
            f"{example[:80]!r} as wrong): a looser grader (numeric for numbers, contains for "
            "phrases) or a prompt that asks for the bare answer"
        )
    elif mean == 1.0:
        causes.append("every answer was already correct: the task is too easy for RL to teach")
    if cut >= 0.5:
        causes.append(f"{cut:.0%} of the answers hit max_tokens = {settings.max_tokens}: raise it")
    if settings.temperature < 0.3:
        causes.append(
            f"temperature {settings.temperature:g} makes a group's answers alike: use ~1.0"
        )
    if not causes:
        causes.append("the rewards were equal within every group: more rollouts per group help")
    return (
        f"no learning signal: all {len(groups)} groups had equal rewards (mean reward {mean:.2f}), "
        "so every advantage is zero and RL learns nothing. Likely: " + "; ".join(causes) + "."
    )


class SignalCheck:
    """Watches the first `signal_check_steps` steps of a run for groups whose rewards differ."""

    def __init__(self, settings: RLConfig) -> None:
        self.settings = settings
        self.groups: list[Group] = []
        self.steps = 0
        self.reason: str | None = None

    def observe(self, step: int, groups: list[Group]) -> None:
        limit = self.settings.signal_check_steps
        if step >= limit:  # a resumed run past the window is not checked again
            return
        self.groups += groups
        self.steps += 1
        if step == limit - 1 and not any(g.has_signal for g in self.groups):
            self.reason = (
                f"after {self.steps} step(s), {zero_signal_message(self.groups, self.settings)} "
                "Fix chief.toml's [rl] and train afresh, or go on with `chief train --resume` "
                '(or [rl] on_zero_signal = "warn").'
            )

    def take_reason(self) -> str | None:
        """The zero-signal finding, once."""
        reason, self.reason = self.reason, None
        return reason
