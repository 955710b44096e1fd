"""`chief eval` and `chief eval-offline`: parse flags, call the workflow or `evals`, print results.

`--json` prints exactly one JSON object on stdout and nothing else (progress and notes go to
stderr), so scripts and CI can parse it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import click

from tinker_chief.cli.cost import max_usd_option
from tinker_chief.cli.options import (
    SEED,
    FiniteFloatRange,
    backend_options,
    json_option,
    precision_label,
    print_json,
    project_option,
    throughput_text,
    track_option,
    tracker_warning,
)
from tinker_chief.evals.defaults import DEFAULT_CONCURRENCY
from tinker_chief.exit_codes import ExitCode

if TYPE_CHECKING:  # imported lazily at run time so `chief --help` stays fast
    from rich.progress import Progress, TaskID

    from tinker_chief.evals.runner import SuiteRunResult
    from tinker_chief.evals.tasks import TaskOutcome
    from tinker_chief.workflows.evaluation import Evaluation


# Both eval commands: requests kept in flight (`evals.defaults` explains the default).
concurrency_option = click.option(
    "--concurrency",
    default=DEFAULT_CONCURRENCY,
    show_default=True,
    type=click.IntRange(min=1),
    help="Requests in flight at once.",
)


def _emit(result: Mapping[str, object], as_json: bool, title: str) -> None:
    if as_json:
        print_json(result)
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=escape(title), show_header=False)
    for key, value in result.items():
        if isinstance(value, float):
            value = f"{value:.4f}"
        table.add_row(escape(key), escape(str(value)))  # paths and model names are the user's text
    Console().print(table)


@click.command(name="eval-offline")
@click.option(
    "--model-path", help="A tinker:// checkpoint path (from `chief train` or Tinker's cloud)."
)
@click.option("-m", "--base-model", help="A base model name, e.g. SmolLM2-135M-Instruct-Q4_1.")
@click.option(
    "--data",
    "data",
    required=True,
    type=click.Path(path_type=Path),
    help='JSONL with {"input","output"} lines (optional "messages", "system", "id").',
)
@click.option(
    "--grader",
    default="exact",
    show_default=True,
    help="exact | normalized_exact | contains | regex | numeric | multiple_choice | json_field | "
    "llm_judge; options as name:key=value,... e.g. numeric:tolerance=0.01",
)
@click.option(
    "--judge-model", help="Model (name or tinker:// path) that grades for --grader llm_judge."
)
@click.option("--max-tokens", default=256, show_default=True, type=click.IntRange(min=1))
@click.option("--temperature", default=0.0, show_default=True, type=FiniteFloatRange(min=0.0))
@click.option("--seed", default=0, show_default=True, type=SEED)
@click.option("--limit", type=click.IntRange(min=1), help="Only the first N samples.")
@concurrency_option
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    help="Directory for samples.jsonl and summary.json "
    "[default: .chief/eval-offline/<model>__<data>].",
)
@click.option(
    "--renderer",
    help="Cookbook renderer for the model's prompts, e.g. qwen3_disable_thinking (what the "
    "checkpoint was trained with) [default: the model's own].",
)
@backend_options
@json_option
def eval_offline_command(
    model_path: str | None,
    base_model: str | None,
    data: Path,
    grader: str,
    judge_model: str | None,
    max_tokens: int,
    temperature: float,
    seed: int,
    limit: int | None,
    concurrency: int,
    output: Path | None,
    renderer: str | None,
    backend: str | None,
    base_url: str | None,
    as_json: bool,
) -> None:
    """Grade one model on one JSONL file; per-sample records go to a JSONL file.

    \b
    Examples:
      chief eval-offline --base-model tiny-random-llama --data qa.jsonl --grader contains
      chief eval-offline --model-path tinker://run-1/sampler_weights/final --data math.jsonl \\
          --grader numeric --max-tokens 512 --json
    """
    from tinker_chief.connection import choose_backend
    from tinker_chief.errors import ConfigurationError
    from tinker_chief.evals.model_sampler import GenerationSettings
    from tinker_chief.evals.offline import OfflineConfig, run_offline

    if bool(model_path) == bool(base_model):
        raise ConfigurationError(
            "give exactly one of --model-path tinker://... or --base-model NAME"
        )
    if model_path and not model_path.startswith("tinker://"):
        raise ConfigurationError(f"--model-path must start with tinker://, got {model_path!r}")
    config = OfflineConfig(
        model=model_path or base_model or "",
        data=data,
        grader=grader,
        judge_model=judge_model,
        settings=GenerationSettings(max_tokens=max_tokens, temperature=temperature, seed=seed),
        limit=limit,
        concurrency=concurrency,
        output_dir=output,
        renderer=renderer,
    )
    result = run_offline(config, choose_backend(backend, base_url))
    _emit(result.as_json(), as_json, f"eval-offline: {config.model} on {data}")


class RichSuiteProgress:
    """`ProgressSink` drawing one rich progress bar per task on stderr."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.ids: dict[str, TaskID] = {}

    def start(self, task: str, total: int, done: int) -> None:
        self.ids[task] = self.progress.add_task(task, total=total, completed=done)

    def advance(self, task: str, n: int = 1) -> None:
        if task in self.ids:
            self.progress.advance(self.ids[task], n)

    def finish(self, task: str, outcome: TaskOutcome) -> None:
        if task not in self.ids:  # reused from an earlier run
            self.ids[task] = self.progress.add_task(f"{task} (cached)", total=1, completed=1)
        status = "[red]failed" if outcome.error else "[green]done"
        self.progress.update(self.ids[task], description=f"{task} {status}")


def print_suite(result: SuiteRunResult) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(
        title=escape(
            f"{result.model} on suite {result.suite_name} (version {result.suite_version})"
        )
    )
    for column in ("task", "kind", "metrics", "samples", "status"):
        table.add_column(column)
    for task in result.tasks:
        shown = ", ".join(
            f"{k}={v['value']:.4g}"
            + (f" [{v['ci_low']:.3g}, {v['ci_high']:.3g}]" if v.get("ci_low") is not None else "")
            for k, v in list(task.metrics.items())[:4]
        )
        shown += "".join(f", {name} not scored" for name in _not_scored(task.settings))
        samples = (
            f"{task.ran_samples} run, {task.reused_samples} cached"
            if not task.reused_task
            else "cached"
        )
        status = (
            f"[red]{escape(task.error)}"
            if task.error
            else (f"recorded #{task.run_id}" if task.run_id else "ok")
        )
        table.add_row(task.task, task.kind, escape(shown.removeprefix(", ")), samples, status)
    console = Console()
    console.print(table)
    for task in result.tasks:
        for name, why in _not_scored(task.settings).items():
            console.print(
                f"[yellow]{task.task}/{escape(name)} not scored[/yellow]: {escape(str(why))}"
            )


def _not_scored(settings: Mapping[str, object]) -> Mapping[str, object]:
    """The metrics a task recorded as not scored, each with why (its settings' NOT_SCORED)."""
    from tinker_chief.registry import NOT_SCORED

    reasons = settings.get(NOT_SCORED)
    return reasons if isinstance(reasons, Mapping) else {}


def suite_throughput(result: SuiteRunResult) -> tuple[float, float]:
    """Prompt + sampled tokens, and seconds, of the tasks this invocation ran (cached ones took no
    time here)."""
    ran = [(task, task.seconds) for task in result.tasks if not task.reused_task and task.seconds]
    return sum(sum(task.tokens.values()) for task, _ in ran), sum(seconds for _, seconds in ran)


def speed_line(evaluation: Evaluation) -> str:
    """`speed: ... tok/s (...); precision: ...` of an evaluation, as `chief eval` prints it."""
    tokens, seconds = suite_throughput(evaluation.result)
    speed = throughput_text(tokens, seconds, "prompt + sampled tokens")
    precision = precision_label(evaluation.backend, evaluation.engine_precision)
    return f"speed: {speed}; precision: {precision}"


@click.command(name="eval")
@click.argument("model")
@click.option("--suite", "suite_name", help="Suite name; must match the project's eval suite.")
@project_option
@click.option("--task", "tasks", multiple=True, help="Run only this suite task (repeatable).")
@concurrency_option
@backend_options
@click.option("--no-record", is_flag=True, help="Do not write results into the registry.")
@json_option
@max_usd_option
@track_option
def eval_command(
    model: str,
    suite_name: str | None,
    project_dir: Path,
    tasks: tuple[str, ...],
    concurrency: int,
    backend: str | None,
    base_url: str | None,
    no_record: bool,
    as_json: bool,
    max_usd: str | None,
    track: str | None,
) -> None:
    """Run the project's eval suite on MODEL and record every result in the registry.

    MODEL is a registry ref (name, name:vN), a tinker:// path or a base model name. An
    interrupted run resumes: finished samples are cached under .chief/eval-cache.
    The backend is chosen as for `chief train` (flags, environment, the project's
    [backend], TINKER_API_KEY, a local engine), so a project evaluates where it trains.
    Exits 4 if any task failed (the others still run and are recorded). A budget
    ([budget], --max-usd) is checked before each task: one that would cross it is not
    started, and the command exits 6 (the finished tasks are recorded).
    With --track the recorded results join the version's experiment-tracker run (metrics at
    its training step, a table); with --no-record nothing is recorded, so nothing is mirrored.

    \b
    Examples:
      chief eval SmolLM2-135M-Instruct-Q4_1
      chief eval my-bot:v2 --task product --task safety
      chief eval my-bot:v2 --track mlflow
    """
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from tinker_chief.spend.budget import eval_guard
    from tinker_chief.tracking.mirror import tracking_for
    from tinker_chief.workflows.evaluation import check_evaluable, evaluate_model
    from tinker_chief.workspace import Workspace

    project = Workspace.open(project_dir)
    tracking = None if no_record else tracking_for(project, track, tracker_warning)
    budget = eval_guard(project, max_usd, "chief eval")  # refuses a suite that would cross it
    check_evaluable(project, model)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=as_json) as bars:
        evaluation = evaluate_model(
            project,
            model,
            suite_name=suite_name,
            tasks=tasks,
            concurrency=concurrency,
            record=not no_record,
            progress=RichSuiteProgress(bars),
            backend=backend,
            base_url=base_url,
            tracking=tracking,
            budget=budget,
        )
    result = evaluation.result
    tracked = evaluation.tracker
    if as_json:
        tokens, seconds = suite_throughput(result)
        rate = round(tokens / seconds, 1) if tokens and seconds else None
        precision = precision_label(evaluation.backend, evaluation.engine_precision)
        tracker = tracked.to_json() if tracked else None
        measured = {"tokens_per_s": rate, "precision": precision, "tracker": tracker}
        print_json({**result.as_json(), **measured})
    else:
        print_suite(result)
        Console().print(escape(speed_line(evaluation)), soft_wrap=True)
        if tracked is not None:
            Console().print(escape(f"tracker: {tracked.describe()}"), soft_wrap=True)
    if budget is not None and result.stopped:
        done, total = len(result.tasks), len(result.tasks) + len(result.not_run)
        where = f"stopped after {done} of {total} tasks"
        raise budget.stopped(where, f"run `chief eval {model}` again")
    if result.failed:
        raise SystemExit(ExitCode.TASKS_FAILED)
