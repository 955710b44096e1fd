"""`chief eval`: the project's agreed suite on one model, where the project trains, recorded.

The suite is the project's own (`chief.toml`'s `[eval_suite]`; a `--suite` name must be its
name), the backend the project's (`Workspace.backend_choice`: flags, environment, `[backend]`,
`$TINKER_API_KEY`, a local engine in `.chief/engine`), so a project evaluates where it trains,
and every finished task is recorded in the project's registry (`Workspace.open_registry`)
unless `record` is off. `evals.runner.run_suite` runs the tasks; a failed task is reported in
its outcome, the others still run. With a tracker (`--track`) the recorded results join the
version's tracker run: the run that trained it, or one of its own for a base model.

    evaluation = evaluate_model(Workspace.open("my-project"), "my-bot:v2", tasks=["product"])
    evaluation.result.failed, evaluation.engine_precision
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tinker_chief.connection import BackendKind, Connection
from tinker_chief.errors import ConfigurationError
from tinker_chief.evals.defaults import DEFAULT_CONCURRENCY
from tinker_chief.evals.runner import (
    ProgressSink,
    SuiteRunResult,
    TaskBudget,
    resolve_model,
    run_suite,
)
from tinker_chief.spend.billing import note_eval_session
from tinker_chief.tracking.contract import RunLink
from tinker_chief.tracking.mirror import Tracking
from tinker_chief.workspace import Workspace


@dataclass(frozen=True)
class Evaluation:
    """A suite run and where it ran: the backend and, on a chief engine, its precision."""

    result: SuiteRunResult
    backend: BackendKind
    engine_precision: str | None  # e.g. "float32"; None: Tinker's cloud, or the engine did not say
    tracker: RunLink | None = None  # the tracker run the results joined (`tracking`)


def check_evaluable(project: Workspace, model: str) -> None:
    """Refuse, before any progress display or connection, a registry version whose weights
    are gone (`chief registry gc`): one line saying when and why."""
    if not project.registry_path.exists():
        return
    with project.open_registry(create=False, read_only=True) as registry:
        resolve_model(model, registry)


def evaluate_model(
    project: Workspace,
    model: str,
    *,
    suite_name: str | None = None,
    tasks: Sequence[str] = (),
    concurrency: int = DEFAULT_CONCURRENCY,
    record: bool = True,
    progress: ProgressSink | None = None,
    connection: Connection | None = None,
    backend: str | None = None,
    base_url: str | None = None,
    tracking: Tracking | None = None,
    budget: TaskBudget | None = None,
) -> Evaluation:
    """Run the project's suite (or its `tasks`) on `model`, a registry ref, a `tinker://` path or
    a base model name; on `connection`, else on the project's backend (`backend`, `base_url` in
    its precedence), opened for the project's base model and `model`. `tracking`: the recorded
    results mirrored into the version's experiment-tracker run. `budget`: asked before each
    task (the result says when it stopped the suite)."""
    suite = project.config.eval_suite
    if suite_name and suite_name != suite.name:
        expected = f"the project's suite is `{suite.name}`, not `{suite_name}`"
        raise ConfigurationError(f"{project.config_path}: {expected}")
    registry = project.open_registry() if record else None
    try:
        if registry is not None:
            # A version whose weights are gone is refused before connecting.
            resolve_model(model, registry)
        opened = project.connected(connection, backend=backend, base_url=base_url, models=[model])
        with opened as connected:
            result = run_suite(
                suite,
                model,
                connected,
                project_dir=project.root,
                registry=registry,
                tasks=list(tasks) or None,
                progress=progress,
                concurrency=concurrency,
                budget=budget,
                renderer=project.renderer_choice,
            )
            # `chief cost` sets the bill beside the count.
            note_eval_session(registry, connected, result)
            tracked = None
            if tracking is not None and registry is not None and result.model_ref is not None:
                tracked = tracking.log_evals(registry, result.model_ref, result.suite_version)
            # Asked while an engine this connection started still runs (it is gone after).
            return Evaluation(result, connected.kind, connected.engine_precision, tracked)
    finally:
        if registry is not None:
            registry.close()
