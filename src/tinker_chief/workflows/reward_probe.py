"""The RL reward measured outside training: `chief plan --probe-rewards` on the base model, and the
held-out reward `chief select` ranks RL checkpoints by.

RL learns only where the rollouts of one prompt earn different rewards. A dry sample of
`prompts` problems x `group_size` rollouts of the base model, graded by the project's reward,
shows the reward distribution and whether groups carry signal, in seconds, where a run would
find out after its first steps (`training.rl.SignalCheck`). Rollouts and grading are the RL
recipe's own (`RLSteps.rollouts`), on the backend `chief train` would use.

The held-out reward (`HeldOutReward`) is the same grading of one greedy answer (temperature 0,
`[rl] max_tokens`) per held-out prompt (`data.val`): deterministic, so two checkpoints answer the
same prompts and compare prompt by prompt (McNemar) in `chief select`.
"""

from __future__ import annotations

from dataclasses import dataclass

from tinker_chief.connection import Connection, refuse_cloud_only_here
from tinker_chief.errors import ConfigurationError
from tinker_chief.evals.usage import TokenUsage, metered
from tinker_chief.training.data import Prepared, Problem
from tinker_chief.training.from_project import spec_from_project
from tinker_chief.training.rl import RLSteps, signal_metrics, zero_signal_message
from tinker_chief.training.session import prepare, reward_judge
from tinker_chief.training.spec import TrainSpec
from tinker_chief.workspace import Workspace

PROBE_PROMPTS = 8


@dataclass(frozen=True)
class RewardProbe:
    prompts: int
    group_size: int
    grader: str
    mean_reward: float
    groups_with_signal: float  # share of groups whose rewards differ
    truncated: float  # share of rollouts that hit max_tokens
    examples: list[tuple[str, float]]  # (answer, reward), a few
    problem: str | None  # the zero-signal explanation, when no group had signal


def probe_rewards(
    project: Workspace,
    *,
    prompts: int = PROBE_PROMPTS,
    backend: str | None = None,
    base_url: str | None = None,
) -> RewardProbe:
    """Sample and grade `prompts` x group_size rollouts of the base model."""
    spec = spec_from_project(project)
    if spec.recipe != "rl":
        raise ConfigurationError(
            f"--probe-rewards: {project.config_path} trains task {spec.recipe!r}; "
            "rewards belong to task 'rl'"
        )
    choice = project.backend_choice(backend, base_url)
    refuse_cloud_only_here(choice, [spec.base_model])
    prepared = prepare(spec, project.root)
    problems = prepared.problems()[:prompts]
    usage = TokenUsage()
    with project.connect(choice) as connection:
        connection.check_serves(spec.base_model)
        judge = reward_judge(spec, connection, usage)
        steps = RLSteps(problems, prepared.renderer, spec.rl, spec.seed, None, usage, judge)
        sampler = metered(connection.sampling_client(base_model=spec.base_model), usage)
        groups = steps.rollouts(sampler, problems, step=0)
    rewards = [r for g in groups for r in g.rewards]
    shares = signal_metrics(groups, spec.rl.max_tokens)
    return RewardProbe(
        prompts=len(groups),
        group_size=spec.rl.group_size,
        grader=spec.rl.grader,
        mean_reward=sum(rewards) / max(1, len(rewards)),
        groups_with_signal=shares["train/groups_with_signal"],
        truncated=shares["train/truncated_fraction"],
        examples=[(g.example, g.rewards[0]) for g in groups[:3]],
        problem=None if any(g.has_signal for g in groups) else zero_signal_message(groups, spec.rl),
    )


class HeldOutReward:
    """The project's reward of a model's greedy answers to the held-out prompts (`data.val`)."""

    def __init__(
        self, prepared: Prepared, connection: Connection, usage: TokenUsage | None = None
    ) -> None:
        spec: TrainSpec = prepared.spec
        self.problems: list[Problem] = prepared.val_problems
        self.usage = usage = usage or TokenUsage()
        greedy = spec.rl.model_copy(update={"group_size": 1, "temperature": 0.0})
        judge = reward_judge(spec, connection, usage)
        self.steps = RLSteps(
            self.problems, prepared.renderer, greedy, spec.seed, None, usage, judge
        )
        self.connection = connection
        self.grader = spec.rl.grader
        self.base_model = spec.base_model

    def __call__(self, model_path: str | None) -> list[float]:
        """Each held-out prompt's reward (1.0 correct, 0.0 not), in the data's order, of the
        checkpoint at `model_path` (a sampler's tinker:// path), or of the base model (None)."""
        base = None if model_path else self.base_model
        client = self.connection.sampling_client(model_path=model_path, base_model=base)
        sampler = metered(client, self.usage)
        return [group.rewards[0] for group in self.steps.rollouts(sampler, self.problems, step=0)]
