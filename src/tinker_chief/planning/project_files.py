"""Creating a project (`chief init`) and writing a plan's files (`chief plan`).

`init_project` validates the data for the recipe, holds out a validation split when none is
given (written under `data/`, so training and evals never see the same lines), writes the
product-eval file in the `{"input","output"}` shape the offline evals read, fills chief.toml
with the planner's recommendations, and generates `scripts/run_inspect_evals.sh`.
`write_plan_files` writes plan.json, plan.md and regenerates the script.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import cast

from tinker_chief.errors import ConfigurationError, DataError
from tinker_chief.jsonl import read_jsonl_objects
from tinker_chief.paths import ProjectPaths
from tinker_chief.planning import hyperparams as hp
from tinker_chief.planning.config import (
    CONFIG_FILENAME,
    DataConfig,
    OptimizerConfig,
    Project,
    ProjectConfig,
    Recipe,
    ScheduleConfig,
    UseCase,
)
from tinker_chief.planning.data_formats import (
    RECIPE_FORMATS,
    Preference,
    PromptAnswer,
    Record,
    RLPrompt,
    read_records,
)
from tinker_chief.planning.inspect_script import write_script
from tinker_chief.planning.plan_markdown import render_plan_markdown
from tinker_chief.planning.planner import Plan, load_planning_model, make_plan
from tinker_chief.planning.templates import build_eval_suite
from tinker_chief.planning.toml_writer import save_project
from tinker_chief.registry.names import model_name_problem

FALLBACK_LR = 1e-4  # the cookbook's chat_sl recipe default, used only when no formula applies
MAX_HELDOUT = 200
PRODUCT_FILE = "data/val_qa.jsonl"


def _relative(path: Path, root: Path) -> str:
    path = path.resolve()
    try:
        return str(path.relative_to(root.resolve()))
    except ValueError:
        return str(path)


def _write_jsonl(path: Path, rows: Sequence[Mapping[str, object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_suffix(path.suffix + ".tmp")
    with staging.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    staging.replace(path)


def split_heldout(train: Path, root: Path, seed: int) -> tuple[str, str]:
    """Hold out ~10% (at most 200 lines) of `train` into data/val.jsonl, the rest into
    data/train.jsonl."""
    targets = {(root / "data" / name).resolve() for name in ("train.jsonl", "val.jsonl")}
    if train.resolve() in targets:
        raise ConfigurationError(
            f"{train}: is the project's own split; pass --val {root / 'data' / 'val.jsonl'} to "
            "reuse it, or give --train a file outside the project's data/ directory"
        )
    rows = [line.value for line in read_jsonl_objects(train)]
    if len(rows) < 2:
        raise DataError(
            f"{train}: {len(rows)} example; need at least 2 to hold one out for evals, or pass "
            "--val"
        )
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    n_val = max(1, min(MAX_HELDOUT, len(rows) // 10))
    held = set(order[:n_val])
    _write_jsonl(root / "data" / "train.jsonl", [r for i, r in enumerate(rows) if i not in held])
    _write_jsonl(root / "data" / "val.jsonl", [r for i, r in enumerate(rows) if i in held])
    return "data/train.jsonl", "data/val.jsonl"


def product_row(record: Record) -> dict[str, str] | None:
    """A held-out record as an eval sample `{"input","output"(,"system")}`, or None when it has no
    single answer."""
    if isinstance(record, PromptAnswer):
        row = {"input": record.input, "output": record.output}
        return {**row, "system": record.system} if record.system else row
    if isinstance(record, RLPrompt):
        return {"input": record.prompt, "output": record.answer}
    messages = (
        record.chosen_conversation().messages if isinstance(record, Preference) else record.messages
    )
    last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=-1)
    users = [m for m in messages[:last] if m["role"] == "user"]
    if last < 0 or not users:
        return None
    row = {"input": users[-1]["content"], "output": messages[last]["content"]}
    system = next((m["content"] for m in messages if m["role"] == "system"), None)
    return {**row, "system": system} if system else row


def write_product_file(project: Project, records: list[Record]) -> str | None:
    rows = [row for row in map(product_row, records) if row is not None]
    if not rows:
        return None
    _write_jsonl(project.root / PRODUCT_FILE, rows)
    return PRODUCT_FILE


def _initial_config(
    name: str,
    use_case: str,
    recipe: str,
    base_model: str,
    renderer: str,
    train: str,
    val: str,
    nll_data: str | None,
    product: str | None,
    *,
    trust_remote_code: bool = False,
) -> ProjectConfig:
    return ProjectConfig(
        name=name,
        base_model=base_model,
        renderer=renderer,
        trust_remote_code=trust_remote_code,
        # Checked against their Literals by ProjectConfig itself (one error naming the field).
        recipe=cast(Recipe, recipe),
        use_case=cast(UseCase, use_case),
        data=DataConfig(train=train, val=val),
        optimizer=OptimizerConfig(learning_rate=FALLBACK_LR),
        schedule=ScheduleConfig(batch_size=8),
        eval_suite=build_eval_suite(
            use_case, name=f"{name}-{use_case}", nll_data=nll_data, product_data=product
        ),
    )


def _apply_recommendations(project: Project, plan: Plan) -> ProjectConfig:
    """chief.toml starts from the plan's recommendations, so a fresh project is consistent."""
    cfg = project.config.model_copy(deep=True)
    cfg.lora.rank = plan.capacity.recommended_rank.value
    if plan.learning_rate.recommended is not None:
        cfg.optimizer.learning_rate = float(f"{plan.learning_rate.recommended.value:.3g}")
    if cfg.recipe == "rl":
        cfg.schedule.epochs = 1
        if plan.reward is not None:
            # The held-out answers are graded the way the rollouts are rewarded.
            cfg.rl.grader = plan.reward.recommended.value
            for task in cfg.eval_suite.tasks:
                if task.layer == "product":
                    task.grader = plan.reward.recommended.value
    else:
        cfg.schedule.batch_size = plan.schedule.batch_size.value
        cfg.schedule.epochs = plan.schedule.epochs.value
    examples = plan.data.examples
    _, total = hp.steps_for(
        examples,
        cfg.rl.groups_per_batch if cfg.recipe == "rl" else cfg.schedule.batch_size,
        cfg.schedule.epochs,
        None,
    )
    cfg.schedule.warmup_steps = hp.recommend_warmup(total).value
    cfg.checkpoints.every_steps = max(1, min(20, total // 4)) if total else 20
    return cfg


def init_project(
    root: str | Path,
    *,
    use_case: str,
    base_model: str,
    train: str | Path,
    val: str | Path | None = None,
    recipe: str = "sl",
    name: str | None = None,
    force: bool = False,
    trust_remote_code: bool = False,
) -> Project:
    """Create (or with `force`, recreate) a project in `root`; returns it. The data and the base
    model's files are read (and fetched) before anything is written, so a failure leaves no
    project behind. `trust_remote_code`: the base model's own code may run (chief.toml records
    it)."""
    from tinker_chief.models import renderer_name_for, resolve_model

    root = Path(root).expanduser().resolve()
    if (root / CONFIG_FILENAME).exists() and not force:
        raise ConfigurationError(
            f"{root / CONFIG_FILENAME}: a project already exists here; pass --force to overwrite"
        )
    project_name = name if name is not None else root.name
    problem = model_name_problem(project_name)
    if problem is not None:  # the name checkpoints are registered under
        where = "--name" if name is not None else "the directory's name (pass --name NAME)"
        raise ConfigurationError(f"project name {project_name!r} from {where}: expected {problem}")
    spec = resolve_model(base_model)
    train_path = Path(train).expanduser()
    expected = RECIPE_FORMATS[recipe]
    read_records(train_path, expected)  # validate before writing anything
    if val is not None:
        read_records(Path(val).expanduser(), expected)
    renderer = renderer_name_for(spec.name, trust_remote_code=trust_remote_code)
    model = load_planning_model(spec.name, renderer, trust_remote_code=trust_remote_code)
    root.mkdir(parents=True, exist_ok=True)
    if val is None:
        train_rel, val_rel = split_heldout(train_path, root, seed=0)
    else:
        train_rel, val_rel = _relative(train_path, root), _relative(Path(val).expanduser(), root)
    val_records = read_records(
        root / val_rel if not os.path.isabs(val_rel) else Path(val_rel), expected
    )

    def initial(nll_data: str | None, product: str | None) -> ProjectConfig:
        return _initial_config(
            project_name,
            use_case,
            recipe,
            spec.name,
            renderer,
            train_rel,
            val_rel,
            nll_data,
            product,
            trust_remote_code=trust_remote_code,
        )

    product = write_product_file(Project(root=root, config=initial(None, None)), val_records)
    nll_data = (
        val_rel
        if recipe in ("sl", "distill") and not isinstance(val_records[0], RLPrompt)
        else None
    )
    project = Project(root=root, config=initial(nll_data, product))
    recommended = _apply_recommendations(project, make_plan(project, model=model))
    project = Project(root=root, config=recommended)
    save_project(project)
    write_script(project)
    return project


def write_plan_files(project: Project, plan: Plan) -> dict[str, Path]:
    """plan.json, plan.md and scripts/run_inspect_evals.sh; returns their paths."""
    paths = {"json": ProjectPaths(project.root).plan_json, "markdown": project.root / "plan.md"}
    paths["json"].write_text(plan.model_dump_json(indent=2) + "\n", encoding="utf-8")
    paths["markdown"].write_text(render_plan_markdown(plan), encoding="utf-8")
    paths["script"] = write_script(project)
    return paths
