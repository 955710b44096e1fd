"""`chief registry list|show|export`, `chief compare`, `chief promote`, `chief retire`.

Thin: parse flags, open the registry through `tinker_chief.registry.Registry`, call it, print
with rich (or one JSON object on stdout with `--json`). The registry file is `--registry PATH`,
else `$CHIEF_REGISTRY`, else the `registry` of the project's `chief.toml` (`-p/--project DIR`,
default `.`), else `.chief/registry.db` (`tinker_chief.workspace.registry_location`). The agreed
suite and `[gate]` rules for `promote` come from that `chief.toml`, opened as a `Workspace`.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from tinker_chief.cli.options import (
    backend_options,
    checked_actor,
    json_option,
    print_json,
    project_option,
    track_option,
    tracker_warning,
)
from tinker_chief.errors import ConfigurationError
from tinker_chief.exit_codes import ExitCode

if TYPE_CHECKING:  # imported lazily at run time so `chief --help` stays fast
    from rich.console import Console

    from tinker_chief.planning import Project
    from tinker_chief.registry import (
        Comparison,
        GateRules,
        ModelRecord,
        Registry,
        SuiteRequirement,
        Usage,
    )
    from tinker_chief.tracking.mirror import Tracking

_REGISTRY_HELP = (
    "Registry database [default: $CHIEF_REGISTRY, the project's registry, .chief/registry.db]."
)


def _common(fn: Callable[..., None]) -> Callable[..., None]:
    """`-p/--project` (the suite, gate rules and registry path come from its chief.toml) and
    `--registry`."""
    fn = project_option(fn)
    return click.option(
        "--registry",
        "registry_path",
        envvar="CHIEF_REGISTRY",
        type=click.Path(path_type=Path, dir_okay=False),
        help=_REGISTRY_HELP,
    )(fn)


def _load_project(project_dir: Path) -> Project | None:
    """The project's config when `chief.toml` exists there, else None (registry-only use)."""
    if not (project_dir / "chief.toml").is_file():
        return None
    from tinker_chief.workspace import Workspace

    return Workspace.open(project_dir)


def _tracking(project_dir: Path, track: str | None) -> Tracking | None:
    """The project's tracker for a status change (`--track`, else chief.toml's [tracking])."""
    from tinker_chief.tracking.mirror import tracking_for

    project = _load_project(project_dir)
    if project is not None:
        return tracking_for(project, track, tracker_warning)
    if track not in (None, "none"):
        where = f"no chief.toml in {project_dir} to name the tracker's project"
        raise ConfigurationError(f"--track {track}: {where}")
    return None


def _open(registry_path: Path | None, project_dir: Path, *, read_only: bool = True) -> Registry:
    """The registry, never created here; opened read-only unless the command changes it."""
    from tinker_chief.registry import Registry
    from tinker_chief.workspace import registry_location

    return Registry.open(
        registry_location(project_dir, registry_path), create=False, read_only=read_only
    )


def gate_inputs(project_dir: Path) -> tuple[SuiteRequirement | None, GateRules]:
    """(SuiteRequirement | None, GateRules) from the project's chief.toml."""
    from tinker_chief.registry import GateRules

    project = _load_project(project_dir)
    return (
        (None, GateRules())
        if project is None
        else (project.config.suite_requirement(), project.config.gate)
    )


def _cost_lines(
    record: ModelRecord, evaluated: Usage, eval_runs: int, project_dir: Path
) -> tuple[str, str]:
    """What the version cost to make and to evaluate (all its eval runs), in words, at the project's
    price table."""
    from tinker_chief.planning.estimates import spent

    project = _load_project(project_dir)
    prices = (
        project.path(project.config.estimates.prices_file)
        if project and project.config.estimates.prices_file
        else None
    )
    evaluate = (
        f"{eval_runs} eval run(s): " + spent(record.base_model, record.backend, evaluated, prices)
        if eval_runs
        else "not evaluated yet"
    )
    return spent(record.base_model, record.backend, record.usage, prices), evaluate


def _print_json(value: object) -> None:
    print_json(value, indent=2, sort_keys=True)


def _console() -> Console:
    from rich.console import Console

    return Console()


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


def _plain(value: object) -> str:
    """`value` as text rich prints literally: stored text (a `--reason "[/]"`, an actor, a metric
    name) must never be read as markup, or one bad row breaks `show`/`audit` for good."""
    from rich.markup import escape

    return escape(str(value))


# --------------------------------------------------------------------------- registry group


@click.group(name="registry")
def registry_group() -> None:
    """The model registry: every checkpoint, its evals and its deployment status.

    \b
    Examples:
      chief registry list
      chief registry show support-bot:v2
      chief registry export                     # writes MODEL_REGISTRY.md
      chief registry audit --limit 20
      chief registry export --format json --output -
    """


@registry_group.command(name="list")
@_common
@click.option(
    "--status",
    type=click.Choice(["candidate", "staging", "prod", "retired"]),
    help="Only models with this status.",
)
@json_option
def list_command(
    registry_path: Path | None, project_dir: Path, status: str | None, as_json: bool
) -> None:
    """List registered models, oldest name first.

    \b
    Example:
      chief registry list --status prod
    """
    with _open(registry_path, project_dir) as reg:
        models = reg.list_models(status=status)
    if as_json:
        _print_json({"models": [m.to_dict() for m in models]})
        return
    from rich.table import Table

    table = Table(title=f"Models ({len(models)})")
    table.add_column("model", no_wrap=True)
    table.add_column("status", no_wrap=True)
    for column in ("base model", "recipe", "LoRA rank", "backend", "created"):
        table.add_column(column, overflow="fold")
    for m in models:
        table.add_row(
            *(
                _plain(v)
                for v in (
                    m.ref,
                    m.status,
                    m.base_model,
                    m.recipe,
                    m.lora.rank if m.lora else "—",
                    m.backend,
                    m.created_at,
                )
            )
        )
    _console().print(table)


@registry_group.command(name="show")
@_common
@click.argument("model")
@json_option
def show_command(registry_path: Path | None, project_dir: Path, model: str, as_json: bool) -> None:
    """Show one model (name, name:vN or tinker:// path): config, latest evals, history.

    \b
    Example:
      chief registry show support-bot:v2 --json
    """
    from tinker_chief.registry import Usage, describe_billed
    from tinker_chief.tracking.contract import stored_links

    with _open(registry_path, project_dir) as reg:
        record = reg.get_model(model)
        results = reg.latest_results(record.ref)
        history = reg.status_history(record.ref)
        runs = reg.eval_runs(record.ref)
        marks = reg.selections(model_ref=record.ref)
        weights = reg.weights(record.ref)
        billed = reg.billed_for(f"run:{record.training_run_id}") if record.training_run_id else None
        exported = reg.exports(record.ref)
    evaluated = Usage.total([r.usage for r in runs])
    cost = _cost_lines(record, evaluated, len(runs), project_dir)
    trackers = stored_links(record.config)
    if as_json:
        _print_json(
            {
                "model": record.to_dict(),
                "results": {t: r.to_dict() for t, r in results.items()},
                "status_history": [h.to_dict() for h in history],
                "selections": [s.to_dict() for s in marks],
                "weights": weights.to_dict() if weights else None,
                "billed_run": billed,
                "exports": [e.to_dict() for e in exported],
                "cost": {
                    "to_make": cost[0],
                    "to_evaluate": cost[1],
                    "eval_usage": evaluated.to_dict(),
                },
            }
        )
        return
    from rich.table import Table

    console = _console()
    console.print(
        f"[bold]{record.ref}[/bold] ({_plain(record.display_name)}) — "
        f"status [bold]{record.status}[/bold]"
    )
    facts = {
        "base model": record.base_model,
        "backend": record.backend,
        "tinker path": record.tinker_path,
        "recipe": record.recipe,
        "parent": record.parent_ref,
        "config hash": record.config_hash,
        "LoRA": (
            f"rank {record.lora.rank}, mlp={record.lora.train_mlp}, attn={record.lora.train_attn}, "
            f"unembed={record.lora.train_unembed}"
        )
        if record.lora
        else None,
        "optimizer": record.optimizer or None,
        "data": f"{record.data.examples} examples, {record.data.tokens} tokens, "
        f"{len(record.data.files)} file(s)",
        "created": record.created_at,
        "cost to make": cost[0],
        "cost to evaluate": cost[1],
        "weights": weights.describe().removeprefix("weights ") if weights else None,
        "training run billed": describe_billed(billed) if record.training_run_id else None,
        "tracker": "; ".join(link.describe() for link in trackers.values()) or None,
    }
    for key, value in facts.items():
        console.print(f"  {key}: {_plain(value if value is not None else '—')}")
    table = Table(title="Latest finished evals")
    for column in ("task", "metric", "value", "95% CI", "n", "suite version"):
        table.add_column(column)
    for task, run in results.items():
        for name, metric in run.metrics.items():
            ci = (
                "—" if metric.ci_low is None else f"[{_fmt(metric.ci_low)}, {_fmt(metric.ci_high)}]"
            )
            table.add_row(
                *(
                    _plain(v)
                    for v in (
                        task,
                        name,
                        _fmt(metric.value),
                        ci,
                        metric.n or "—",
                        run.suite_version,
                    )
                )
            )
    console.print(table)
    for task, run in results.items():
        for name, why in sorted(run.not_scored.items()):
            console.print(
                f"  [yellow]{_plain(f'{task}/{name}')} not scored[/yellow]: {_plain(why)}"
            )
    for change in history:
        console.print(
            f"  {change.at} {change.from_status or '—'} → {change.to_status} "
            f"by {_plain(change.actor)}{' (forced)' if change.forced else ''}: "
            f"{_plain(change.reason)}"
        )
    for mark in marks:
        later = "" if mark.current else " (superseded by a later selection)"
        console.print(
            f"  selected by chief select for {_plain(mark.scope)} on {mark.at}{later}: "
            f"{_plain(mark.reason)}"
        )
    for e in exported:
        where = e.location if e.target == "dir" else f"{e.location} commit {e.commit_sha} {e.url}"
        verb = "exported" if e.target == "dir" else "published"
        console.print(
            f"  {verb} ({e.format}) on {e.at} to {_plain(where)}; "
            f"round-trip max abs diff {e.max_abs_diff:.2g}"
        )


@registry_group.command(name="audit")
@_common
@click.option("--limit", type=click.IntRange(min=1), help="Only the last N entries.")
@json_option
def audit_command(
    registry_path: Path | None, project_dir: Path, limit: int | None, as_json: bool
) -> None:
    """Show the audit log: every registry-changing command, who ran it and when.

    \b
    Example:
      chief registry audit --limit 20
    """
    with _open(registry_path, project_dir) as reg:
        entries = reg.audit_log(limit=limit)
    if as_json:
        _print_json({"audit_log": [e.to_dict() for e in entries]})
        return
    from rich.table import Table

    table = Table(title=f"Audit log ({len(entries)})")
    for column in ("at", "actor", "command", "model", "details"):
        table.add_column(column, overflow="fold")
    for e in entries:
        table.add_row(
            *(
                _plain(v)
                for v in (
                    e.at,
                    e.actor,
                    e.command,
                    e.target or "—",
                    json.dumps(e.details, sort_keys=True),
                )
            )
        )
    _console().print(table)


@registry_group.command(name="export")
@_common
@click.option("--format", "fmt", type=click.Choice(["md", "json"]), default="md", show_default=True)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="File to write, '-' for stdout "
    "[default: MODEL_REGISTRY.md / MODEL_REGISTRY.json in the project directory].",
)
def export_command(
    registry_path: Path | None, project_dir: Path, fmt: str, output: Path | None
) -> None:
    """Write the registry as MODEL_REGISTRY.md (or JSON): deterministic, regenerate any time.

    \b
    Example:
      chief registry export --output docs/MODEL_REGISTRY.md
    """
    suite, _ = gate_inputs(project_dir)
    with _open(registry_path, project_dir) as reg:
        if fmt == "md":
            text = reg.export_markdown(suite=suite)
        else:
            text = json.dumps(reg.export_json(suite=suite), indent=2, sort_keys=True) + "\n"
    if output is not None and str(output) == "-":
        sys.stdout.write(text)
        return
    target = output or project_dir / ("MODEL_REGISTRY.md" if fmt == "md" else "MODEL_REGISTRY.json")
    _write_atomically(target, text)
    click.echo(f"Wrote {target}", err=True)


def _write_atomically(target: Path, text: str) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = target.with_name(target.name + ".tmp")
        staging.write_text(text, encoding="utf-8")
        os.replace(staging, target)
    except OSError as exc:
        raise ConfigurationError(f"--output {target}: cannot write ({exc.strerror})") from None


# ----------------------------------------------------------------------- compare / promote


@click.command(name="compare")
@_common
@click.argument("models", nargs=-1, required=True)
@click.option(
    "--metric", "metrics", multiple=True, help="Only this metric (name or task/metric); repeatable."
)
@click.option(
    "--current-suite",
    is_flag=True,
    help="Only results on the project's current suite version (default: latest of any).",
)
@json_option
def compare_command(
    registry_path: Path | None,
    project_dir: Path,
    models: tuple[str, ...],
    metrics: tuple[str, ...],
    current_suite: bool,
    as_json: bool,
) -> None:
    """Compare models metric by metric: deltas vs the first, CIs, best, paired significance.

    Paired tests use the samples both runs share: McNemar for pass/fail, paired bootstrap
    for scores.

    \b
    Example:
      chief compare support-bot:v1 support-bot:v2
    """
    suite, rules = gate_inputs(project_dir)
    if current_suite and suite is None:
        raise ConfigurationError(f"--current-suite: no chief.toml in {project_dir}")
    with _open(registry_path, project_dir) as reg:
        comparison = reg.compare(
            list(models),
            list(metrics) or None,
            suite_version=suite.version if current_suite and suite else None,
            rules=rules,
        )
        weights = [(ref, reg.weights(ref)) for ref in comparison.models]
    if as_json:
        _print_json(comparison.to_dict())
        return
    print_comparison(comparison, rules.alpha)
    for ref, kept in weights:
        if kept is not None and kept.deleted_at:
            _console().print(
                f"  note: {_plain(ref)}: {_plain(kept.describe())}; its results above stay valid"
            )


def print_comparison(comparison: Comparison, alpha: float) -> None:
    from rich.table import Table

    table = Table(title=f"Compared against {comparison.models[0]}")
    table.add_column("metric")
    for ref in comparison.models:
        table.add_column(ref, justify="right")
    table.add_column("best")
    for row in comparison.rows:
        cells = []
        for i, value in enumerate(row.values):
            text = "—" if value is None else _fmt(value.value)
            if value is not None and value.ci_low is not None:
                text += f" [{_fmt(value.ci_low)}, {_fmt(value.ci_high)}]"
            if i and row.deltas[i] is not None:
                text += f" ({row.deltas[i]:+.4g})"
            test = row.tests[i]
            if test is not None:
                text += f" p={test.p_value:.3g}{'*' if test.p_value < alpha else ''}"
            cells.append(_plain(text))
        arrow = "↑" if row.higher_is_better else "↓"
        table.add_row(_plain(f"{row.key} {arrow}"), *cells, _plain(row.best or "—"))
    console = _console()
    console.print(table)
    versions = {v for vs in comparison.suite_versions.values() for v in vs}
    if len(versions) > 1:
        shown = _plain(", ".join(sorted(versions)))
        console.print(
            f"[yellow]Note: results come from different suite versions ({shown});"
            " use --current-suite to compare like with like.[/yellow]"
        )
    console.print(
        f"* paired test significant at alpha={alpha} "
        "(McNemar for pass/fail, paired bootstrap for scores)"
    )


@click.command(name="promote")
@_common
@click.argument("model")
@click.option("--to", "to", type=click.Choice(["staging", "prod"]), required=True)
@click.option(
    "--force",
    is_flag=True,
    help="Override a failing gate (needs --reason; recorded in the audit log).",
)
@click.option("--reason", default="", help="Why; required with --force.")
@click.option(
    "--actor",
    envvar="CHIEF_ACTOR",
    callback=checked_actor,
    help="Who is promoting [default: $CHIEF_ACTOR or the login name].",
)
@json_option
@backend_options
@track_option
def promote_command(
    registry_path: Path | None,
    project_dir: Path,
    model: str,
    to: str,
    force: bool,
    reason: str,
    actor: str | None,
    as_json: bool,
    backend: str | None,
    base_url: str | None,
    track: str | None,
) -> None:
    """Move MODEL to staging or prod. Prod passes the gate first or the command fails (exit 3).
    With --track the gate's verdict and the new status are tagged on the version's tracker run.

    Gate: every suite task evaluated on this model at the current suite version; no metric
    worse than prod beyond tolerance with significance; safety thresholds met.

    \b
    Examples:
      chief promote support-bot:v3 --to prod
      chief promote support-bot:v3 --to prod --force --reason "hotfix, evals re-run tonight"
    """
    from tinker_chief.errors import PromotionRejected

    if force and not reason.strip():
        raise ConfigurationError('--force needs --reason "...": a forced promotion must say why')
    suite, rules = gate_inputs(project_dir)
    tracking = _tracking(project_dir, track)
    with _open(registry_path, project_dir, read_only=False) as reg:
        report = reg.check_promotion(model, to, suite=suite, rules=rules)
        try:
            record = reg.apply_promotion(report, actor=actor, reason=reason, force=force)
        except PromotionRejected as refused:
            if tracking is not None:
                ref = report.model_ref
                status = reg.get_model(ref).status
                tracking.log_status(reg, ref, status, f"refused for {to}", refused.reasons)
            raise
        if tracking is not None:
            verdict = f"forced to {to}" if report.reasons else f"passed for {to}"
            tracking.log_status(reg, record.ref, record.status, verdict, report.reasons)
            if to == "prod" and report.prod_ref:
                moved = f"moved to staging: {record.ref} is prod"
                tracking.log_status(reg, report.prod_ref, "staging", moved)
        problems = _follow_status(reg, record.ref, project_dir, backend, base_url)
    _warn(problems)
    if as_json:
        _print_json({"model": record.to_dict(), "gate": report.to_dict()})
        return
    console = _console()
    for note in report.notes:
        console.print(f"  note: {_plain(note)}")
    if report.reasons:
        console.print(f"[yellow]Forced past {len(report.reasons)} failing gate rule(s):[/yellow]")
        for failing in report.reasons:
            console.print(f"  - {_plain(failing)}")
    previous = f" ({report.prod_ref} moved to staging)" if to == "prod" and report.prod_ref else ""
    console.print(f"[green]{record.ref} is now {record.status}[/green]{previous}")


@click.command(name="retire")
@_common
@click.argument("model")
@click.option("--reason", default="", help="Why it is retired (recorded in its history).")
@click.option(
    "--actor",
    envvar="CHIEF_ACTOR",
    callback=checked_actor,
    help="Who is retiring it [default: $CHIEF_ACTOR or the login name].",
)
@json_option
@backend_options
@track_option
def retire_command(
    registry_path: Path | None,
    project_dir: Path,
    model: str,
    reason: str,
    actor: str | None,
    as_json: bool,
    backend: str | None,
    base_url: str | None,
    track: str | None,
) -> None:
    """Retire MODEL: it stays in the registry and its history, but can no longer be promoted.

    Its weights expire again ([checkpoints] ttl_days from now) unless a prod or staging
    version was trained from it; `chief registry gc` deletes them sooner. With --track the
    new status is tagged on the version's tracker run.

    \b
    Example:
      chief retire support-bot:v1 --reason "superseded by v3"
    """
    tracking = _tracking(project_dir, track)
    with _open(registry_path, project_dir, read_only=False) as reg:
        record = reg.retire(model, actor=actor, reason=reason)
        if tracking is not None:
            why = [reason] if reason else []
            tracking.log_status(reg, record.ref, record.status, "retired", why)
        problems = _follow_status(reg, record.ref, project_dir, backend, base_url)
    if as_json:
        _warn(problems)
        _print_json({"model": record.to_dict()})
        return
    click.echo(f"{record.ref} is now retired")
    _warn(problems)


def _follow_status(
    reg: Registry, ref: str, project_dir: Path, backend: str | None, base_url: str | None
) -> list[str]:
    """Make the backend's checkpoint TTLs follow `ref`'s new status (the project's backend, reached
    only when a TTL changes); returns what could not be done, one line each."""
    project = _load_project(project_dir)
    if project is None:
        return []  # no chief.toml: no backend or ttl_days to go by
    from tinker_chief.cli.cost import ProjectBackend
    from tinker_chief.spend.lifecycle import after_status_change

    with ProjectBackend(project, backend, base_url) as reached:
        return after_status_change(reg, reached.rest, ref, project.config.checkpoints.ttl_days)


def _warn(problems: list[str]) -> None:
    for problem in problems:
        click.secho(f"warning: {problem}; `chief registry gc` retries", fg="yellow", err=True)


@registry_group.command(name="gc")
@_common
@click.option(
    "--dry-run", is_flag=True, help="Only list what would be deleted and the storage it would free."
)
@click.option(
    "--actor",
    envvar="CHIEF_ACTOR",
    callback=checked_actor,
    help="Who runs it [default: $CHIEF_ACTOR or the login name].",
)
@json_option
@backend_options
def gc_command(
    registry_path: Path | None,
    project_dir: Path,
    dry_run: bool,
    actor: str | None,
    as_json: bool,
    backend: str | None,
    base_url: str | None,
) -> None:
    """Delete the weights of retired versions, unchosen sweep points and expired candidates.

    Never prod, staging or the versions they were trained from (their TTLs are cleared
    first). Prints the bytes and the monthly storage cost freed (where the backend states a
    storage rate); the registry records each deletion. Refused while a run is training.

    \b
    Examples:
      chief registry gc --dry-run
      chief registry gc
    """
    from tinker_chief.cli.cost import ProjectBackend, print_gc
    from tinker_chief.errors import TrainingError
    from tinker_chief.spend.lifecycle import collect
    from tinker_chief.training import RunLog

    project = _load_project(project_dir)
    if project is None:
        raise ConfigurationError(
            f"chief registry gc: no chief.toml in {project_dir} (it names the backend)"
        )
    if active := RunLog.active(project.root):
        raise TrainingError(
            f"chief registry gc: run {', '.join(active)} is training; run gc when it has finished "
            "(its checkpoints may still be needed to resume)"
        )
    with (
        _open(registry_path, project_dir, read_only=dry_run) as reg,
        ProjectBackend(project, backend, base_url) as b,
    ):
        report = collect(reg, b.rest(), b.admin(), dry_run=dry_run, actor=actor)
    if as_json:
        _print_json(report.to_dict())
    else:
        print_gc(report, _console())
    if report.failed:
        raise SystemExit(ExitCode.ERROR)
