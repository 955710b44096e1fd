"""`chief plan --probe-rewards`: the base model's rewards on a few prompts, before any training.

RL learns only where the rollouts of one prompt earn different rewards. A dry sample of
`prompts` problems x `group_size` rollouts of the base model, graded by the project's reward,
shows the reward distribution and whether groups carry signal, in seconds, where a run would
find out after its first steps (`training.rl.SignalCheck`). Rollouts and grading are the RL
recipe's own (`RLSteps.rollouts`), on the backend `chief train` would use.
"""

from __future__ import annotations

from dataclasses import dataclass

from tinker_chief.connection import choose_backend, open_connection, refuse_cloud_only_here
from tinker_chief.errors import ConfigurationError
from tinker_chief.evals.usage import TokenUsage, metered
from tinker_chief.paths import ProjectPaths
from tinker_chief.planning import Project
from tinker_chief.training.project import spec_from_project
from tinker_chief.training.rl import RLSteps, signal_metrics, zero_signal_message
from tinker_chief.training.session import prepare, reward_judge

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
    project: Project,
    *,
    prompts: int = PROBE_PROMPTS,
    backend: str | None = None,
    base_url: str | None = None,
) -> RewardProbe:
    """Sample and grade `prompts` x group_size rollouts of the base model."""
    spec = spec_from_project(project)
    if spec.recipe != "rl":
        raise ConfigurationError(
            f"--probe-rewards: {project.config_path} trains task {spec.recipe!r}; rewards belong to task 'rl'"
        )
    section = project.config.backend
    choice = choose_backend(backend, base_url, project_kind=section.kind, project_url=section.base_url)
    refuse_cloud_only_here(choice, [spec.base_model])
    prepared = prepare(spec, project.root)
    problems = prepared.train_items[:prompts]
    usage = TokenUsage()
    state = ProjectPaths(project.root).engine_state
    with open_connection(choice, state_dir=state, models=[spec.base_model]) as connection:
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
