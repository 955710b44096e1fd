"""`train()`: the library entry point behind `chief train` and the demo.

Order matters for "clear error before any training starts": the data is read and validated
and rendered first (no backend needed), then the backend is opened (key, reachability and
base model checked), then the recipe's step runner is built, and only then does the loop run.
`resume=True` picks the project's latest unfinished run and continues it from its last
checkpoint with the spec it was started with.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from tinker_chief.connection import (
    BackendChoice,
    Connection,
    choose_backend,
    refuse_cloud_only_here,
    session_id_of,
)
from tinker_chief.errors import TrainingError
from tinker_chief.evals.graders.base import TextGenerator
from tinker_chief.evals.usage import TokenUsage, metered
from tinker_chief.paths import ProjectPaths
from tinker_chief.planning import Project
from tinker_chief.training import data as d
from tinker_chief.training.data import Prepared
from tinker_chief.training.inline_evals import (
    EvaluatorBuilder,
    accuracy_evaluator_builder,
    generate_answers,
    nll_evaluator_builder,
)
from tinker_chief.training.loop import (
    CheckpointSink,
    Observer,
    RunRecorder,
    SinkFactory,
    SpendGuard,
    StopRequest,
    Trainer,
    TrainResult,
)
from tinker_chief.training.rl import RLSteps
from tinker_chief.training.runlog import RunLog
from tinker_chief.training.spec import TrainSpec, data_hash, stored_spec
from tinker_chief.training.steps import DPOSteps, StepRunner, SupervisedSteps
from tinker_chief.workspace import Workspace, connect_at

if TYPE_CHECKING:
    import tinker
    from tinker_cookbook.renderers import Renderer


def load_renderer(spec: TrainSpec) -> Renderer:
    """The spec's renderer on its base model's tokenizer (loading them imports `transformers`)."""
    from tinker_chief.models import chosen_renderer_name, get_renderer, load_tokenizer

    name = chosen_renderer_name(spec.base_model, spec.renderer_choice)
    return get_renderer(name, load_tokenizer(spec.base_model))


def prepare(spec: TrainSpec, project_dir: Path) -> Prepared:
    """Read and validate the spec's data files; raises `DataError` naming file, line and field."""
    renderer = load_renderer(spec)
    train_path = project_dir / spec.data.train
    prepared = Prepared(
        spec,
        renderer,
        [],
        data_hash=data_hash([p for p in spec.data_paths(project_dir) if p.exists()]),
    )
    if spec.recipe == "sl":
        prepared.train_items = d.conversations_to_data(
            d.read_sft(train_path),
            renderer,
            spec.data.max_length,
            spec.data.train_on_what,
            spec.data.truncation == "drop",
        )
    elif spec.recipe == "distill":
        prepared.train_items = d.read_distill_inputs(train_path)
    elif spec.recipe == "rl":
        prepared.train_items = d.read_problems(train_path)
    else:
        prepared.train_items = d.preference_data(
            d.read_preferences(train_path), renderer, spec.data.max_length
        )
    if not prepared.train_items:
        raise TrainingError(f"{train_path}: no training examples")
    if spec.data.val:
        _prepare_val(prepared, project_dir, project_dir / spec.data.val)
    return prepared


def _prepare_val(prepared: Prepared, project_dir: Path, path: Path) -> None:
    spec = prepared.spec
    if spec.recipe == "rl":
        prepared.val_problems = d.read_problems(path)
        return
    if spec.recipe == "dpo":
        prepared.val_data = d.preference_data(
            d.read_preferences(path), prepared.renderer, spec.data.max_length
        )[0::2]
        return
    conversations = d.read_sft(path)
    prepared.val_data = d.conversations_to_data(
        conversations,
        prepared.renderer,
        spec.data.max_length,
        spec.data.train_on_what,
        reduction="none",
    )
    prepared.val_problems = d.problems_from_conversations(conversations)
    if spec.sampled_eval_data:
        prepared.val_problems = d.problems_from_conversations(
            d.read_sft(project_dir / spec.sampled_eval_data)
        )


def _distilled_data(
    prepared: Prepared, samplers: SamplerSource, log: RunLog, usage: TokenUsage
) -> list[tinker.Datum]:
    """Label the inputs with the teacher (base model + teacher prompt) once; cache in the run dir.

    The cache makes a resumed run train on exactly the labels the interrupted run drew. The
    teacher's prefilled and sampled tokens are logged as a step-0 row of metrics.jsonl.
    """
    spec, renderer = prepared.spec, prepared.renderer
    cache = log.paths.distilled
    if cache.exists():
        conversations = d.read_sft(cache)
    else:
        teacher_model = spec.distill.teacher_model or spec.base_model
        prompts = [d.user_turn(x, spec.distill.teacher_prompt) for x in prepared.inputs()]
        before = usage.counts()
        labels = generate_answers(
            metered(samplers.sampling_client(base_model=teacher_model), usage),
            teacher_model,
            renderer,
            prompts,
            spec.distill.max_tokens,
            spec.distill.temperature,
        )
        log.log_metrics(0, usage.since(before))
        rows = [
            d.user_turn(x) + [{"role": "assistant", "content": y}]
            for x, y in zip(prepared.inputs(), labels, strict=True)
            if y.strip()
        ]
        if not rows:
            raise TrainingError("prompt distillation: the teacher produced no usable labels")
        cache.write_text("".join(json.dumps({"messages": c}) + "\n" for c in rows))
        conversations = d.read_sft(cache)
    return d.conversations_to_data(
        conversations, renderer, spec.data.max_length, spec.data.train_on_what
    )


class SamplerSource(Protocol):
    """Where the recipe's samplers come from: a `Connection`, or a run's own SDK session."""

    def sampling_client(
        self, model_path: str | None = None, base_model: str | None = None
    ) -> tinker.SamplingClient: ...


@dataclass(frozen=True)
class RunSamplers:
    """The samplers of a run's own SDK session (`Connection.run_client`): billing reports the
    recipe's teacher, reference, base and judge with the run's training, so each point of a
    sweep pays for its own samplers instead of the sweep's shared connection."""

    service: tinker.ServiceClient

    def sampling_client(
        self, model_path: str | None = None, base_model: str | None = None
    ) -> tinker.SamplingClient:
        created = self.service.create_sampling_client(model_path=model_path, base_model=base_model)
        return created.result()


def build_runner(
    prepared: Prepared, samplers: SamplerSource, log: RunLog, usage: TokenUsage | None = None
) -> StepRunner:
    """The recipe's step runner; its samplers (teacher, reference, base, rollouts) count into
    `usage`."""
    spec, usage = prepared.spec, usage or TokenUsage()
    if spec.recipe == "sl":
        return SupervisedSteps(prepared.datums())
    if spec.recipe == "distill":
        return SupervisedSteps(_distilled_data(prepared, samplers, log, usage))
    if spec.recipe == "dpo":
        reference = metered(samplers.sampling_client(base_model=spec.base_model), usage)
        return DPOSteps(prepared.datums(), reference, spec.dpo.beta)
    base = None
    if spec.rl.kl_penalty_coef > 0:
        base = metered(samplers.sampling_client(base_model=spec.base_model), usage)
    judge = reward_judge(spec, samplers, usage)
    return RLSteps(prepared.problems(), prepared.renderer, spec.rl, spec.seed, base, usage, judge)


def judge_model(spec: TrainSpec) -> str | None:
    """The model an `llm_judge` reward samples (`[rl] judge_model`, else the base model), or None
    when the run's grader needs no judge."""
    from tinker_chief.evals.graders.factory import grader_needs_judge

    if spec.recipe != "rl" or not grader_needs_judge(spec.rl.grader):
        return None
    return spec.rl.judge_model or spec.base_model


def reward_judge(
    spec: TrainSpec, samplers: SamplerSource, usage: TokenUsage
) -> TextGenerator | None:
    """The judge of an `llm_judge` reward: `[rl] judge_model`, else the base model itself."""
    from tinker_chief.evals.model_sampler import ModelSampler
    from tinker_chief.models import chosen_renderer_name, get_renderer, load_tokenizer

    model = judge_model(spec)
    if model is None:
        return None
    tokenizer = load_tokenizer(model)
    client = metered(samplers.sampling_client(base_model=model), usage)
    renderer = get_renderer(chosen_renderer_name(model, spec.renderer_choice), tokenizer)
    return ModelSampler(client, model, tokenizer, renderer)


def evaluator_builders(prepared: Prepared) -> tuple[list[EvaluatorBuilder], list[EvaluatorBuilder]]:
    """Frequent (validation NLL) and infrequent (sampled accuracy) evaluators for the spec."""
    spec = prepared.spec
    frequent = [nll_evaluator_builder(prepared.val_data)] if prepared.val_data else []
    infrequent: list[EvaluatorBuilder] = []
    if prepared.val_problems and spec.inline_evals.sampled_every_steps > 0:
        problems = prepared.val_problems[: spec.sampled_eval_limit]
        max_tokens = spec.rl.max_tokens if spec.recipe == "rl" else 64
        infrequent.append(
            accuracy_evaluator_builder(
                problems,
                spec.base_model,
                spec.sampled_eval_grader,
                max_tokens,
                renderer=spec.renderer_choice,
            )
        )
    return frequent, infrequent


def _resume_log(project_dir: Path, spec: TrainSpec, resume: bool | str = True) -> RunLog:
    """The run to continue: `resume` names it (a sweep resumes each of its runs), or True: the
    latest."""
    if isinstance(resume, str):
        named = RunLog(ProjectPaths(project_dir).runs / resume)
        log = named if named.exists() else None
    else:
        log = RunLog.latest(project_dir)
    if log is None:
        raise TrainingError(
            f"--resume: no training run under {ProjectPaths(project_dir).runs} to resume"
        )
    status = log.status().get("status")
    if status == "finished":
        raise TrainingError(
            f"--resume: the latest run {log.run_id} already finished; "
            "start a new run without --resume"
        )
    stored = stored_spec(log.spec_json(), log.dir)
    if stored.config_hash() != spec.config_hash():
        raise TrainingError(
            f"--resume: run {log.run_id} was started with a different plan "
            f"(config {stored.config_hash()} vs {spec.config_hash()}); "
            "re-plan back or start a new run without --resume"
        )
    return log


def train(
    project_dir: Path,
    spec: TrainSpec,
    *,
    backend: str | None = None,
    base_url: str | None = None,
    connection: Connection | None = None,
    resume: bool | str = False,
    sink_factory: SinkFactory | None = None,
    observer: Observer | None = None,
    stop: StopRequest | None = None,
    guard: SpendGuard | None = None,
) -> TrainResult:
    """Run (or resume) `spec` for the project;
    `sink_factory(log, prepared, connection) -> CheckpointSink`.

    `resume`: True continues the latest unfinished run, a run id that run. `stop`: a Ctrl-C handler
    shared with other runs in other threads (a sweep's), instead of one installed by this run.
    `guard`: the budget the loop asks after every step (a sweep's points share one).

    The backend: an already open `connection` (left open), else `backend`/`base_url` through the
    one precedence of `tinker_chief.connection` (flags, environment, `$TINKER_API_KEY`, local)."""
    choice = None if connection is not None else choose_backend(backend, base_url)
    project = Path(project_dir)
    return _train(project, spec, choice, connection, resume, sink_factory, observer, stop, guard)


def train_project(
    project: Project,
    *,
    backend: str | None = None,
    base_url: str | None = None,
    connection: Connection | None = None,
    resume: bool = False,
    observer: Observer | None = None,
    guard: SpendGuard | None = None,
) -> TrainResult:
    """`chief train`: the project's plan, checkpoints registered in its registry. The backend as
    `train`'s, with the project's `[backend]` section in the precedence (after flags and
    environment): `project` is opened as a `Workspace` (it may be one already). `guard`: the
    budget the loop asks after every step."""
    from tinker_chief.training.from_project import registry_sink_factory, spec_from_project

    workspace = Workspace.of(project)
    choice = None if connection is not None else workspace.backend_choice(backend, base_url)
    sinks = registry_sink_factory(workspace)
    return _train(
        workspace.root,
        spec_from_project(workspace),
        choice,
        connection,
        resume,
        sinks,
        observer,
        None,
        guard,
    )


def _train(
    project_dir: Path,
    spec: TrainSpec,
    choice: BackendChoice | None,
    connection: Connection | None,
    resume: bool | str,
    sink_factory: SinkFactory | None,
    observer: Observer | None,
    stop: StopRequest | None = None,
    guard: SpendGuard | None = None,
) -> TrainResult:
    """Checks that need no backend first (cloud-only model here, --resume, the data), then connect
    (unless given a connection) and run."""
    if choice is not None:
        refuse_cloud_only_here(choice, [spec.base_model])  # before reading data with its tokenizer
    log = _resume_log(project_dir, spec, resume) if resume else None
    prepared = prepare(spec, project_dir)
    if connection is not None:
        return _run(
            connection, prepared, project_dir, log, resume, sink_factory, observer, stop, guard
        )
    assert choice is not None
    with connect_at(project_dir, choice, [spec.base_model]) as opened:
        return _run(
            opened,
            prepared,
            project_dir,
            log,
            resume,
            sink_factory,
            observer,
            stop,
            guard,
            shared=False,
        )


def _note_run(
    log: RunLog,
    sink: CheckpointSink | None,
    connection: Connection,
    sessions: list[str | None],
) -> None:
    """Remember the SDK sessions the run used (run.json `sessions`) and, through the sink, its
    whole count and sessions in the registry, so `chief cost` can set the bill beside the count."""
    found = [s for s in sessions if s]
    known = log.status().get("sessions") or []
    if found:
        merged = [*known, *(s for s in found if s not in known)]
        log.write_status(log.status().get("status", "running"), sessions=merged)
    if isinstance(sink, RunRecorder):
        sink.record_run(found, connection.kind)


def _run(
    connection: Connection,
    prepared: Prepared,
    project_dir: Path,
    log: RunLog | None,
    resume: bool | str,
    sink_factory: SinkFactory | None,
    observer: Observer | None,
    stop: StopRequest | None = None,
    guard: SpendGuard | None = None,
    shared: bool = True,
) -> TrainResult:
    """`shared`: the connection serves other work too (a sweep's other runs), so its own session
    is not this run's."""
    spec = prepared.spec
    connection.check_serves(spec.base_model)
    judge = judge_model(spec)
    if judge is not None and judge != spec.base_model:  # refused before the run is written
        connection.check_serves(judge, role="the judge model ([rl] judge_model)")
    if log is None:
        log = RunLog.create(
            project_dir,
            spec.model_dump(mode="json"),
            {
                "backend": connection.kind,
                "config_hash": spec.config_hash(),
                "data_hash": prepared.data_hash,
            },
        )
    checkpoint = log.last_checkpoint() if resume else None
    if resume and checkpoint is None:
        log.truncate_metrics_after(-1)  # killed before its first checkpoint: start over in place
    usage = TokenUsage()
    frequent, infrequent = evaluator_builders(prepared)
    sink: CheckpointSink | None = sink_factory(log, prepared, connection) if sink_factory else None
    # The run's training, inline evals and recipe samplers in an SDK session of their own:
    # billing reports it apart.
    service = connection.run_client({"chief_scope": f"run:{log.run_id}"})
    try:
        runner = build_runner(prepared, RunSamplers(service), log, usage)
        trainer = Trainer(
            spec,
            service,
            runner,
            log,
            frequent,
            infrequent,
            sink,
            observer,
            usage,
            stop=stop,
            guard=guard,
        )
        result = trainer.run(checkpoint)
    finally:
        _note_run(
            log,
            sink,
            connection,
            [session_id_of(service), *([] if shared else [connection.session_id()])],
        )
        connection.close_run_client(service)
    # Asked once the steps ran (a local engine decides `auto` when it loads the base) and while an
    # engine this connection started still runs: the summary says which precision the steps ran in.
    log.write_status(result.status, engine_precision=connection.engine_precision)
    return result
