"""Row <-> record conversion and the small queries every part of the registry shares.

Kept apart from `Registry` so the store, the gate, compare and export read rows one way.
JSON columns are written canonically (sorted keys) so the export is byte-for-byte stable.
"""

from __future__ import annotations

import json
import re
import sqlite3

from tinker_chief.errors import ModelNotFoundError
from tinker_chief.registry._records import (
    AuditEntry,
    DataSummary,
    EvalRun,
    Export,
    LoraSpec,
    MetricValue,
    ModelRecord,
    SampleOutcome,
    Selection,
    Usage,
)
from tinker_chief.registry._scrub import scrub, scrub_text

MODEL_COLUMNS = (
    "m.id, m.name, m.version, m.display_name, m.tinker_path, m.backend, m.base_model, m.recipe, "
    "m.lora_json, m.optimizer_json, m.data_json, p.name, p.version, m.training_run_id, "
    "m.training_step, m.config_hash, m.config_json, m.status, m.created_at, "
    "m.train_tokens, m.prefill_tokens, m.sample_tokens, m.machine_seconds"
)
MODEL_FROM = "models m LEFT JOIN models p ON p.id = m.parent_id"
RUN_COLUMNS = (
    "r.id, m.name, m.version, r.suite_name, r.suite_version, r.task, r.headline_metric, "
    "r.settings_json, r.status, r.started_at, r.finished_at, r.log_location, r.error, "
    "r.prefill_tokens, r.sample_tokens, r.machine_seconds"
)
# Versions are SQLite integers: more than 18 digits is no version any registry holds.
_REF = re.compile(r"^(?P<name>.+):v(?P<version>\d{1,18})$")

# A row of MODEL_COLUMNS, as SQLite returns it.
ModelRow = tuple[
    int,  # m.id
    str,  # m.name
    int,  # m.version
    str,  # m.display_name
    str | None,  # m.tinker_path
    str,  # m.backend
    str,  # m.base_model
    str,  # m.recipe
    str | None,  # m.lora_json
    str,  # m.optimizer_json
    str,  # m.data_json
    str | None,  # p.name (the parent's)
    int | None,  # p.version
    str | None,  # m.training_run_id
    int | None,  # m.training_step
    str | None,  # m.config_hash
    str,  # m.config_json
    str,  # m.status
    str,  # m.created_at
    int | None,  # m.train_tokens
    int | None,  # m.prefill_tokens
    int | None,  # m.sample_tokens
    float | None,  # m.machine_seconds
]
# A row of RUN_COLUMNS, as SQLite returns it.
RunRow = tuple[
    int,  # r.id
    str,  # m.name
    int,  # m.version
    str,  # r.suite_name
    str,  # r.suite_version
    str,  # r.task
    str | None,  # r.headline_metric
    str,  # r.settings_json
    str,  # r.status
    str,  # r.started_at
    str | None,  # r.finished_at
    str | None,  # r.log_location
    str | None,  # r.error
    int | None,  # r.prefill_tokens
    int | None,  # r.sample_tokens
    float | None,  # r.machine_seconds
]


def dumps(value: object) -> str:
    """Canonical, scrubbed JSON for a column: secrets never reach the file.

    Values JSON has no type for (paths, datetimes, enums) are stored as their `str()`.
    """
    return json.dumps(
        scrub(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )


def model_from_row(row: ModelRow) -> ModelRecord:
    lora = json.loads(row[8]) if row[8] else None
    return ModelRecord(
        id=row[0],
        name=row[1],
        version=row[2],
        display_name=row[3],
        tinker_path=row[4],
        backend=row[5],
        base_model=row[6],
        recipe=row[7],
        lora=LoraSpec(**lora) if lora else None,
        optimizer=json.loads(row[9]),
        data=DataSummary.from_dict(json.loads(row[10])),
        parent_ref=f"{row[11]}:v{row[12]}" if row[11] is not None else None,
        training_run_id=row[13],
        training_step=row[14],
        config_hash=row[15],
        config=json.loads(row[16]),
        status=row[17],
        created_at=row[18],
        usage=Usage(*row[19:23]),
    )


def find_model(db: sqlite3.Connection, ref: str) -> ModelRecord:
    """Resolve "name:vN", "name" (its latest version) or a `tinker://` path to a model."""
    args: tuple[object, ...]
    if ref.startswith("tinker://"):
        where, args = "m.tinker_path = ?", (scrub_text(ref),)  # stored scrubbed: compared so
    elif (match := _REF.match(ref)) is not None:
        where, args = "m.name = ? AND m.version = ?", (match["name"], int(match["version"]))
    else:
        where, args = "m.name = ?", (ref,)
    row = db.execute(
        f"SELECT {MODEL_COLUMNS} FROM {MODEL_FROM} WHERE {where} "
        "ORDER BY m.version DESC, m.id DESC LIMIT 1",
        args,
    ).fetchone()
    if row is None:
        known = [
            f"{n}:v{v}"
            for n, v in db.execute(
                "SELECT name, version FROM models ORDER BY name, version LIMIT 8"
            )
        ]
        hint = f"registered: {', '.join(known)}" if known else "the registry has no models yet"
        raise ModelNotFoundError(
            f"no model `{scrub_text(ref)}` in the registry (expected name, name:vN or a tinker:// "
            f"path; {hint}); see `chief registry list`"
        )
    return model_from_row(row)


def run_from_row(row: RunRow, metrics: dict[str, MetricValue]) -> EvalRun:
    return EvalRun(
        id=row[0],
        model_ref=f"{row[1]}:v{row[2]}",
        suite_name=row[3],
        suite_version=row[4],
        task=row[5],
        headline_metric=row[6],
        settings=json.loads(row[7]),
        status=row[8],
        started_at=row[9],
        finished_at=row[10],
        log_location=row[11],
        error=row[12],
        metrics=metrics,
        usage=Usage(None, *row[13:16]),
    )


_RUNS_FROM = "eval_runs r JOIN models m ON m.id = r.model_id"


def query_runs(db: sqlite3.Connection, where: str, args: tuple[object, ...]) -> list[EvalRun]:
    """Eval runs matching `where` with their metrics: two queries, however many runs match."""
    rows = db.execute(
        f"SELECT {RUN_COLUMNS} FROM {_RUNS_FROM} WHERE {where} ORDER BY r.task, r.id", args
    ).fetchall()
    metrics: dict[int, dict[str, MetricValue]] = {}
    for run_id, name, value, lo, hi, n in db.execute(
        f"SELECT x.run_id, x.name, x.value, x.ci_low, x.ci_high, x.n FROM metrics x "
        f"JOIN eval_runs r ON r.id = x.run_id JOIN models m ON m.id = r.model_id WHERE {where} "
        "ORDER BY x.run_id, x.name",
        args,
    ):
        metrics.setdefault(run_id, {})[name] = MetricValue(name, value, lo, hi, n)
    return [run_from_row(row, metrics.get(row[0], {})) for row in rows]


def latest_finished_all(
    db: sqlite3.Connection, suite_version: str | None = None, model_id: int | None = None
) -> dict[str, dict[str, EvalRun]]:
    """Per model ref, per task, the most recent finished run (on `suite_version` when given)."""
    where, args = "r.status = 'finished'", list[object]()
    if model_id is not None:
        where, args = where + " AND r.model_id = ?", [*args, model_id]
    if suite_version is not None:  # stored scrubbed: compared the same way
        where, args = where + " AND r.suite_version = ?", [*args, scrub_text(suite_version)]
    latest: dict[str, dict[str, EvalRun]] = {}
    for run in query_runs(db, where, tuple(args)):  # by task then id: later runs replace earlier
        latest.setdefault(run.model_ref, {})[run.task] = run
    return {ref: dict(sorted(runs.items())) for ref, runs in latest.items()}


def latest_finished(
    db: sqlite3.Connection, model_id: int, suite_version: str | None = None
) -> dict[str, EvalRun]:
    """Per task, the model's most recent finished run (on `suite_version` when given)."""
    by_model = latest_finished_all(db, suite_version, model_id)
    return next(iter(by_model.values()), {})


def load_samples(db: sqlite3.Connection, run_id: int) -> list[SampleOutcome]:
    return [
        SampleOutcome(sid, score, None if passed is None else bool(passed), detail)
        for sid, score, passed, detail in db.execute(
            "SELECT sample_id, score, passed, detail FROM samples WHERE run_id = ? "
            "ORDER BY sample_id",
            (run_id,),
        )
    ]


def list_models(db: sqlite3.Connection, status: str | None = None) -> list[ModelRecord]:
    """All models, ordered by name then version (optionally only those with `status`)."""
    where, args = ("WHERE m.status = ?", (status,)) if status else ("", ())
    rows = db.execute(
        f"SELECT {MODEL_COLUMNS} FROM {MODEL_FROM} {where} ORDER BY m.name, m.version", args
    )
    return [model_from_row(row) for row in rows.fetchall()]


def selections(
    db: sqlite3.Connection, scope: str | None = None, model_id: int | None = None
) -> list[Selection]:
    """`chief select`'s marks, oldest first (of one scope and/or one model when given); each says
    whether it is still its scope's candidate (the scope's last mark)."""
    scope = None if scope is None else scrub_text(scope)  # stored scrubbed: compared the same way
    where = [c for c, v in (("s.scope = ?", scope), ("s.model_id = ?", model_id)) if v is not None]
    rows = db.execute(
        "SELECT s.id, s.scope, m.name || ':v' || m.version, s.at, s.actor, s.reason, "
        "s.details_json, s.id = (SELECT max(t.id) FROM selections t WHERE t.scope = s.scope) "
        "FROM selections s JOIN models m ON m.id = s.model_id "
        + (f"WHERE {' AND '.join(where)} " if where else "")
        + "ORDER BY s.id",
        tuple(v for v in (scope, model_id) if v is not None),
    ).fetchall()
    return [
        Selection(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6]), bool(r[7])) for r in rows
    ]


def audit_log(db: sqlite3.Connection, limit: int | None = None) -> list[AuditEntry]:
    """Registry-changing commands, oldest first (the last `limit` when given)."""
    rows = db.execute(
        "SELECT id, at, actor, command, target, details_json FROM audit_log ORDER BY id"
    ).fetchall()
    entries = [AuditEntry(r[0], r[1], r[2], r[3], r[4], json.loads(r[5])) for r in rows]
    return entries[-limit:] if limit else entries


def exports(db: sqlite3.Connection, model_id: int | None = None) -> list[Export]:
    """`chief export` / `chief publish` rows, oldest first (of one model when given)."""
    where, args = ("WHERE e.model_id = ? ", (model_id,)) if model_id is not None else ("", ())
    rows = db.execute(
        "SELECT e.id, m.name || ':v' || m.version, e.at, e.actor, e.format, e.target, e.location, "
        "e.commit_sha, e.url, e.weights_json, e.max_abs_diff, e.tolerance, e.details_json "
        f"FROM exports e JOIN models m ON m.id = e.model_id {where}ORDER BY e.id",
        args,
    ).fetchall()
    return [
        Export(
            id=r[0],
            model_ref=r[1],
            at=r[2],
            actor=r[3],
            format=r[4],
            target=r[5],
            location=r[6],
            commit_sha=r[7],
            url=r[8],
            weights=json.loads(r[9]),
            max_abs_diff=r[10],
            tolerance=r[11],
            details=json.loads(r[12]),
        )
        for r in rows
    ]
