"""`train()`: the library entry point behind `chief train` and the demo.

Order matters for "clear error before any training starts": the data is read and validated
and rendered first (no backend needed), then the backend is opened (key, reachability and
base model checked), then the recipe's step runner is built, and only then does the loop run.
`resume=True` picks the project's latest unfinished run and continues it from its last
checkpoint with the spec it was started with.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinker_chief.errors import TrainingError
from tinker_chief.training import data as d
from tinker_chief.training.connect import Backend, open_backend
from tinker_chief.training.inline_evals import (
    EvaluatorBuilder,
    accuracy_evaluator_builder,
    generate_answers,
    nll_evaluator_builder,
)
from tinker_chief.training.loop import CheckpointSink, Observer, Trainer, TrainResult
from tinker_chief.training.rl import RLSteps
from tinker_chief.training.runlog import RunLog
from tinker_chief.training.spec import TrainSpec, data_hash
from tinker_chief.training.steps import DPOSteps, StepRunner, SupervisedSteps


@dataclass
class Prepared:
    """Validated, rendered data for one spec (no backend touched yet)."""

    spec: TrainSpec
    renderer: Any
    train_items: list[Any]  # datums (sft/dpo), Problems (rl), input strings (distillation)
    val_data: list[Any] = field(default_factory=list)  # datums for validation NLL
    val_problems: list[d.Problem] = field(default_factory=list)
    data_hash: str = ""


def _renderer(spec: TrainSpec) -> Any:
    from tinker_chief.models import get_renderer, load_tokenizer, renderer_name_for

    return get_renderer(spec.renderer or renderer_name_for(spec.base_model), load_tokenizer(spec.base_model))


def prepare(spec: TrainSpec, project_dir: Path) -> Prepared:
    """Read and validate the spec's data files; raises `DataError` naming file, line and field."""
    renderer = _renderer(spec)
    train_path = project_dir / spec.train_data
    prepared = Prepared(spec, renderer, [], data_hash=data_hash([p for p in spec.data_paths(project_dir)
                                                                 if p.exists()]))
    if spec.recipe == "sl":
        prepared.train_items = d.conversations_to_data(d.read_sft(train_path), renderer, spec.max_length,
                                                       spec.train_on_what, spec.truncation == "drop")
    elif spec.recipe == "distill":
        prepared.train_items = d.read_distill_inputs(train_path)
    elif spec.recipe == "rl":
        prepared.train_items = d.read_problems(train_path)
    else:
        prepared.train_items = d.preference_data(d.read_preferences(train_path), renderer, spec.max_length)
    if not prepared.train_items:
        raise TrainingError(f"{train_path}: no training examples")
    if spec.val_data:
        _prepare_val(prepared, project_dir, project_dir / spec.val_data)
    return prepared


def _prepare_val(prepared: Prepared, project_dir: Path, path: Path) -> None:
    spec = prepared.spec
    if spec.recipe == "rl":
        prepared.val_problems = d.read_problems(path)
        return
    if spec.recipe == "dpo":
        prepared.val_data = d.preference_data(d.read_preferences(path), prepared.renderer, spec.max_length)[0::2]
        return
    conversations = d.read_sft(path)
    prepared.val_data = d.conversations_to_data(conversations, prepared.renderer, spec.max_length,
                                                spec.train_on_what, reduction="none")
    prepared.val_problems = d.problems_from_conversations(conversations)
    if spec.sampled_eval_data:
        prepared.val_problems = d.problems_from_conversations(d.read_sft(project_dir / spec.sampled_eval_data))


def _distilled_data(prepared: Prepared, backend: Backend, log: RunLog) -> list[Any]:
    """Label the inputs with the teacher (base model + teacher prompt) once; cache in the run dir.

    The cache makes a resumed run train on exactly the labels the interrupted run drew.
    """
    spec, renderer = prepared.spec, prepared.renderer
    assert spec.distill is not None  # guaranteed by TrainSpec's validator
    cache = log.dir / "distilled.jsonl"
    if cache.exists():
        conversations = d.read_sft(cache)
    else:
        teacher_model = spec.distill.teacher_model or spec.base_model
        prompts = [d.user_turn(x, spec.distill.teacher_prompt) for x in prepared.train_items]
        labels = generate_answers(backend.sampling_client(base_model=teacher_model), teacher_model, renderer,
                                  prompts, spec.distill.max_tokens, spec.distill.temperature)
        rows = [d.user_turn(x) + [{"role": "assistant", "content": y}]
                for x, y in zip(prepared.train_items, labels, strict=True) if y.strip()]
        if not rows:
            raise TrainingError("prompt distillation: the teacher produced no usable labels")
        cache.write_text("".join(json.dumps({"messages": c}) + "\n" for c in rows))
        conversations = d.read_sft(cache)
    return d.conversations_to_data(conversations, renderer, spec.max_length, spec.train_on_what)


def build_runner(prepared: Prepared, backend: Backend, log: RunLog) -> StepRunner:
    spec = prepared.spec
    if spec.recipe == "sl":
        return SupervisedSteps(prepared.train_items)
    if spec.recipe == "distill":
        return SupervisedSteps(_distilled_data(prepared, backend, log))
    if spec.recipe == "dpo":
        return DPOSteps(prepared.train_items, backend.sampling_client(base_model=spec.base_model), spec.dpo_beta)
    base = backend.sampling_client(base_model=spec.base_model) if spec.rl.kl_penalty_coef > 0 else None
    return RLSteps(prepared.train_items, prepared.renderer, spec.rl, spec.seed, base)


def evaluator_builders(prepared: Prepared) -> tuple[list[EvaluatorBuilder], list[EvaluatorBuilder]]:
    """Frequent (validation NLL) and infrequent (sampled accuracy) evaluators for the spec."""
    spec = prepared.spec
    frequent = [nll_evaluator_builder(prepared.val_data)] if prepared.val_data else []
    infrequent: list[EvaluatorBuilder] = []
    if prepared.val_problems and spec.infrequent_eval_every > 0:
        problems = prepared.val_problems[: spec.infrequent_eval_limit]
        max_tokens = spec.rl.max_tokens if spec.recipe == "rl" else 64
        infrequent.append(accuracy_evaluator_builder(problems, spec.base_model, spec.sampled_eval_grader,
                                                     max_tokens))
    return frequent, infrequent


def _resume_log(project_dir: Path, spec: TrainSpec) -> RunLog:
    log = RunLog.latest(project_dir)
    if log is None:
        raise TrainingError(f"--resume: no training run under {project_dir / '.chief' / 'runs'} to resume")
    status = log.status().get("status")
    if status == "finished":
        raise TrainingError(f"--resume: the latest run {log.run_id} already finished; start a new run without --resume")
    stored = TrainSpec.model_validate(log.spec_json())
    if stored.config_hash() != spec.config_hash():
        raise TrainingError(
            f"--resume: run {log.run_id} was started with a different plan (config {stored.config_hash()} vs "
            f"{spec.config_hash()}); re-plan back or start a new run without --resume"
        )
    return log


def train(project_dir: Path, spec: TrainSpec, *, backend: str | None = None, base_url: str | None = None,
          resume: bool = False, sink_factory: Any = None, observer: Observer | None = None) -> TrainResult:
    """Run (or resume) `spec` for the project; `sink_factory(log, prepared, backend) -> CheckpointSink`."""
    project_dir = Path(project_dir)
    _refuse_cloud_model_here(spec.base_model, backend, base_url)
    log = _resume_log(project_dir, spec) if resume else None
    prepared = prepare(spec, project_dir)
    with open_backend(project_dir, backend, base_url, spec.base_model) as opened:
        if log is None:
            log = RunLog.create(project_dir, spec.model_dump(mode="json"),
                                {"backend": opened.kind, "config_hash": spec.config_hash(),
                                 "data_hash": prepared.data_hash})
        checkpoint = log.last_checkpoint() if resume else None
        if resume and checkpoint is None:
            log.truncate_metrics_after(-1)  # killed before its first checkpoint: start over in place
        runner = build_runner(prepared, opened, log)
        frequent, infrequent = evaluator_builders(prepared)
        sink: CheckpointSink | None = sink_factory(log, prepared, opened) if sink_factory else None
        trainer = Trainer(spec, opened.service, runner, log, frequent, infrequent, sink, observer)
        return trainer.run(checkpoint)


def _refuse_cloud_model_here(base_model: str, backend: str | None, base_url: str | None) -> None:
    """A model without local weights on the engine started here: say so, never switch backend."""
    from tinker_chief.models import cloud_only_message, resolve_model
    from tinker_chief.training.connect import resolve_backend_kind

    if base_url is None and resolve_backend_kind(backend, base_url) == "local" \
            and resolve_model(base_model).source == "cloud":
        raise TrainingError(cloud_only_message(base_model))


def train_project(project: Any, *, backend: str | None = None, base_url: str | None = None, resume: bool = False,
                  observer: Observer | None = None) -> TrainResult:
    """`chief train`: the project's plan, its backend settings as defaults, checkpoints registered."""
    from tinker_chief.training.project import registry_sink_factory, spec_from_project

    config = project.config
    backend = backend or (config.backend.kind if config.backend.kind == "tinker" else None)
    base_url = base_url or config.backend.base_url
    return train(project.root, spec_from_project(project), backend=backend, base_url=base_url, resume=resume,
                 sink_factory=registry_sink_factory(project), observer=observer)
