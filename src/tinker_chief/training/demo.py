"""The demo project: the synthetic secret-code skill, initialised and planned by the planner.

`create_demo_project` writes the skill's data, calls the planner's `init_project` (which picks
LoRA rank, learning rate, schedule and the chat eval suite by the doctrine) and then narrows
the project to what a 2-core CPU can run in a few minutes: the suite keeps its training-centric
NLL, the custom task (exact match on held-out secret codes), safety and calibration, and
drops the public benchmarks (they need downloads and hours on CPU). Every override is listed
in `DemoProject.overrides` so the demo can say what it changed and why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tinker_chief.errors import ConfigurationError
from tinker_chief.evals.suite import EvalSuite, EvalTask
from tinker_chief.planning import Project, save_project
from tinker_chief.training.synthetic import write_secret_code_skill

DEMO_TASKS = ("nll", "jsonl", "safety", "calibration")  # eval kinds the demo keeps
CUSTOM_TASK = "secret_code"
DEMO_NAME = "secret-code"


@dataclass
class DemoProject:
    project: Project
    train_file: Path
    heldout_file: Path
    overrides: list[str] = field(default_factory=list)


def _demo_suite(suite: EvalSuite) -> tuple[EvalSuite, list[str]]:
    tasks: list[EvalTask] = []
    notes: list[str] = []
    for task in suite.tasks:
        if task.kind not in DEMO_TASKS:
            notes.append(f"eval suite: dropped benchmark `{task.name}` (needs a dataset download and hours on CPU)")
            continue
        if task.kind == "jsonl":  # the product task on held-out prompts: exact match on the code
            task = task.model_copy(update={
                "name": CUSTOM_TASK, "grader": "exact", "judge_model": None,
                "description": "held-out secret codes, exact match",
                "settings": task.settings.model_copy(update={"max_tokens": 16})})
            notes.append(f"eval suite: custom task `{CUSTOM_TASK}` graded by exact match (the rule is exact)")
        elif task.kind == "safety":
            task = task.model_copy(update={"settings": task.settings.model_copy(update={"max_tokens": 32, "limit": 3})})
            notes.append("eval suite: safety on 3 prompts per category, answers capped at 32 tokens "
                         "(refusals show in the first sentence)")
        tasks.append(task)
    return EvalSuite(name=suite.name, tasks=tasks), notes


def _clear_previous_demo(directory: Path) -> None:
    """Remove an earlier demo here (its registry and runs too); refuse to touch anything else."""
    import shutil
    import tomllib

    if not directory.exists() or not any(directory.iterdir()):
        return
    config = directory / "chief.toml"
    try:
        is_demo = tomllib.loads(config.read_text()).get("name") == DEMO_NAME
    except (OSError, tomllib.TOMLDecodeError):
        is_demo = False
    if not is_demo:
        raise ConfigurationError(f"--dir {directory}: exists and is not a chief demo project; "
                                 "choose an empty or new directory")
    shutil.rmtree(directory)


def create_demo_project(directory: Path, n_train: int = 200, n_heldout: int = 50, seed: int = 0,
                        max_steps: int | None = None, base_model: str | None = None) -> DemoProject:
    """Init and plan the demo project in `directory` (an earlier demo there is replaced)."""
    from tinker_chief.models import DEFAULT_MODEL
    from tinker_chief.planning import init_project

    directory = Path(directory).resolve()
    _clear_previous_demo(directory)
    train_file, heldout_file = write_secret_code_skill(directory / "skill", n_train, n_heldout, seed)
    project = init_project(directory, use_case="chat", base_model=base_model or DEFAULT_MODEL, train=train_file,
                           val=heldout_file, task="sl", name=DEMO_NAME)
    config = project.config.model_copy(deep=True)
    suite, overrides = _demo_suite(config.eval_suite)
    config.eval_suite = suite
    config.checkpoints.every_steps = max(config.checkpoints.every_steps, 25)
    overrides.append(f"checkpoints: every {config.checkpoints.every_steps} steps (each one is saved and registered)")
    if max_steps is not None:
        config.schedule.steps = max_steps
        overrides.append(f"schedule: {max_steps} steps (--steps)")
    project = Project(project.root, config)
    save_project(project)
    return DemoProject(project, train_file, heldout_file, overrides)
