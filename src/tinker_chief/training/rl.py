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
from typing import Any

import tinker

from tinker_chief.evals.graders.base import GradeInput, Verdict
from tinker_chief.evals.usage import TokenUsage, metered
from tinker_chief.planning.config import RLConfig
from tinker_chief.training.data import Problem


def _datum(prompt: Any, tokens: list[int], logprobs: list[float], advantage: float) -> tinker.Datum:
    """Prompt + sampled tokens, shifted; advantages and sampling logprobs only on sampled tokens."""
    prompt_tokens = prompt.to_ints()
    full = prompt_tokens + tokens
    n_prompt = len(prompt_tokens) - 1  # positions whose target is still a prompt token
    zeros = [0.0] * n_prompt
    return tinker.Datum(
        model_input=tinker.ModelInput.from_ints(full[:-1]),
        loss_fn_inputs={
            "target_tokens": tinker.TensorData(data=full[1:], dtype="int64", shape=[len(full) - 1]),
            "logprobs": tinker.TensorData(data=zeros + list(logprobs), dtype="float32", shape=[len(full) - 1]),
            "advantages": tinker.TensorData(
                data=zeros + [advantage] * len(tokens), dtype="float32", shape=[len(full) - 1]
            ),
            "mask": tinker.TensorData(data=zeros + [1.0] * len(tokens), dtype="float32", shape=[len(full) - 1]),
        },
    )


class RLSteps:
    """Group sampling, group-centred advantages, importance-sampling loss."""

    def __init__(
        self,
        problems: list[Problem],
        renderer: Any,
        settings: RLConfig,
        seed: int,
        base_sampler: Any | None = None,
        usage: TokenUsage | None = None,
    ) -> None:
        from tinker_chief.evals.graders import make_grader

        self.problems = problems
        self.renderer = renderer
        self.settings = settings
        self.seed = seed
        self.base_sampler = base_sampler  # needed only with a KL penalty
        self.grader = make_grader(settings.grader)
        self.usage = usage or TokenUsage()  # rollouts' prefilled and sampled tokens (the loop logs them)

    def __len__(self) -> int:
        return len(self.problems)

    def _text(self, tokens: list[int]) -> str:
        message, _ = self.renderer.parse_response(tokens)
        content = message.get("content")
        return content if isinstance(content, str) else ""

    def _rewards(self, problem: Problem, sequences: list[Any]) -> list[float]:
        """1.0 per correct answer. Through `grade()`, the contract every grader keeps (not only rule graders)."""
        question = next((m["content"] for m in reversed(problem.prompt) if m.get("role") == "user"), "")
        items = [GradeInput(str(question), self._text(list(s.tokens)), problem.answer) for s in sequences]

        async def grade_all() -> list[Verdict]:
            return list(await asyncio.gather(*(self.grader.grade(item) for item in items)))

        return [1.0 if verdict.correct else 0.0 for verdict in asyncio.run(grade_all())]

    def _rollouts(self, sampler: Any, problems: list[Problem], step: int) -> list[tuple[Any, list[Any]]]:
        prompts = [self.renderer.build_generation_prompt(p.prompt) for p in problems]
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
        return [(prompt, future.result().sequences) for prompt, future in zip(prompts, futures, strict=True)]

    def run(self, client: Any, indices: list[int], adam: Any, step: int) -> dict[str, float]:
        problems = [self.problems[i] for i in indices]
        sampler = metered(client.save_weights_and_get_sampling_client().result(), self.usage)
        data: list[tinker.Datum] = []
        rewards_all: list[float] = []
        for problem, (prompt, sequences) in zip(problems, self._rollouts(sampler, problems, step), strict=True):
            rewards = self._rewards(problem, sequences)
            mean = sum(rewards) / len(rewards)
            rewards_all += rewards
            for seq, reward in zip(sequences, rewards, strict=True):
                if seq.tokens:
                    data.append(
                        _datum(prompt, list(seq.tokens), list(seq.logprobs or [0.0] * len(seq.tokens)), reward - mean)
                    )
        metrics: dict[str, float] = {}
        if self.settings.kl_penalty_coef > 0 and self.base_sampler is not None:
            from tinker_cookbook.rl.metrics import incorporate_kl_penalty

            metrics.update(
                asyncio.run(incorporate_kl_penalty(data, self.base_sampler, self.settings.kl_penalty_coef, 0.0))
            )
        for datum in data:  # `mask` is a client-side helper, never sent (as the cookbook does)
            datum.loss_fn_inputs.pop("mask", None)
        fwd_bwd = client.forward_backward(data, loss_fn=self.settings.loss_fn)
        optim = client.optim_step(adam)
        out = fwd_bwd.result()
        optim.result()
        loss = out.metrics.get("loss:sum", float("nan"))
        metrics.update(
            {
                "train/loss": float(loss) / max(1, len(data)),
                "train/reward": sum(rewards_all) / max(1, len(rewards_all)),
                "train/tokens": sum(d.model_input.length for d in data),
            }
        )
        return metrics
