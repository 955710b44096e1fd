"""Ordered forward migrations of the registry schema (llm's `m001_initial` pattern).

Each `@migration` function runs once, inside the same transaction that records its name in
`_chief_migrations`, so a crash mid-migration leaves the previous schema intact. The schema
version is the number of migrations; a file recording migrations this code does not know was
written by a newer tinker-chief and is refused rather than touched.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

Migration = Callable[[sqlite3.Connection], None]
MIGRATIONS: list[tuple[str, Migration]] = []


def migration(fn: Migration) -> Migration:
    MIGRATIONS.append((fn.__name__, fn))
    return fn


def _run_script(db: sqlite3.Connection, script: str) -> None:
    # Not `executescript`: it commits first, which would split a migration from its record.
    for statement in script.split(";\n"):
        if statement.strip():
            db.execute(statement)


@migration
def m001_initial(db: sqlite3.Connection) -> None:
    _run_script(
        db,
        """
        CREATE TABLE models (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            version INTEGER NOT NULL CHECK (version >= 1),
            display_name TEXT NOT NULL,
            tinker_path TEXT,
            backend TEXT NOT NULL CHECK (backend IN ('local', 'tinker')),
            base_model TEXT NOT NULL,
            recipe TEXT NOT NULL CHECK (recipe IN ('sl', 'rl', 'dpo', 'distill', 'base')),
            lora_json TEXT,
            optimizer_json TEXT NOT NULL DEFAULT '{}',
            data_json TEXT NOT NULL DEFAULT '{}',
            parent_id INTEGER REFERENCES models(id),
            training_run_id TEXT,
            training_step INTEGER,
            config_hash TEXT,
            config_json TEXT NOT NULL DEFAULT '{}',
            status TEXT NOT NULL DEFAULT 'candidate'
                CHECK (status IN ('candidate', 'staging', 'prod', 'retired')),
            created_at TEXT NOT NULL,
            UNIQUE (name, version)
        );
        CREATE INDEX models_tinker_path ON models(tinker_path);
        -- Exactly one prod per project, enforced by the database as well as by promote().
        CREATE UNIQUE INDEX models_one_prod ON models(status) WHERE status = 'prod';

        CREATE TABLE status_history (
            id INTEGER PRIMARY KEY,
            model_id INTEGER NOT NULL REFERENCES models(id),
            from_status TEXT,
            to_status TEXT NOT NULL,
            at TEXT NOT NULL,
            actor TEXT NOT NULL,
            reason TEXT NOT NULL DEFAULT '',
            forced INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX status_history_model ON status_history(model_id);

        CREATE TABLE eval_runs (
            id INTEGER PRIMARY KEY,
            model_id INTEGER NOT NULL REFERENCES models(id),
            suite_name TEXT NOT NULL,
            suite_version TEXT NOT NULL,
            task TEXT NOT NULL,
            headline_metric TEXT,
            settings_json TEXT NOT NULL DEFAULT '{}',
            status TEXT NOT NULL CHECK (status IN ('running', 'finished', 'failed', 'cancelled')),
            started_at TEXT NOT NULL,
            finished_at TEXT,
            log_location TEXT,
            error TEXT
        );
        CREATE INDEX eval_runs_model_task ON eval_runs(model_id, task, status);

        CREATE TABLE metrics (
            run_id INTEGER NOT NULL REFERENCES eval_runs(id),
            name TEXT NOT NULL,
            value REAL NOT NULL,
            ci_low REAL,
            ci_high REAL,
            n INTEGER,
            PRIMARY KEY (run_id, name)
        ) WITHOUT ROWID;

        CREATE TABLE samples (
            run_id INTEGER NOT NULL REFERENCES eval_runs(id),
            sample_id TEXT NOT NULL,
            score REAL NOT NULL,
            passed INTEGER,
            detail TEXT,
            PRIMARY KEY (run_id, sample_id)
        ) WITHOUT ROWID;

        CREATE TABLE audit_log (
            id INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            actor TEXT NOT NULL,
            command TEXT NOT NULL,
            target TEXT,
            details_json TEXT NOT NULL DEFAULT '{}'
        );
        """,
    )


@migration
def m002_unique_tinker_path(db: sqlite3.Connection) -> None:
    # One registry entry per checkpoint: a tinker:// path names exactly one model version.
    _run_script(
        db,
        """
        DROP INDEX models_tinker_path;
        CREATE UNIQUE INDEX models_tinker_path ON models(tinker_path) WHERE tinker_path IS NOT NULL
        """,
    )


@migration
def m003_usage(db: sqlite3.Connection) -> None:
    # What a version cost to make and an eval run to run: tokens trained, prefilled and sampled
    # (what Tinker bills) and machine seconds (the local engine's cost). NULL: not recorded
    # (rows written before this migration, or by a writer that did not count).
    _run_script(
        db,
        """
        ALTER TABLE models ADD COLUMN train_tokens INTEGER;
        ALTER TABLE models ADD COLUMN prefill_tokens INTEGER;
        ALTER TABLE models ADD COLUMN sample_tokens INTEGER;
        ALTER TABLE models ADD COLUMN machine_seconds REAL;
        ALTER TABLE eval_runs ADD COLUMN prefill_tokens INTEGER;
        ALTER TABLE eval_runs ADD COLUMN sample_tokens INTEGER;
        ALTER TABLE eval_runs ADD COLUMN machine_seconds REAL
        """,
    )


@migration
def m004_selections(db: sqlite3.Connection) -> None:
    # `chief select`'s verdicts: which model it chose as the candidate of a sweep or a training
    # run (the scope), by which metric and test. A mark, not a status: promotion stays with the
    # gate.
    _run_script(
        db,
        """
        CREATE TABLE selections (
            id INTEGER PRIMARY KEY,
            scope TEXT NOT NULL,
            model_id INTEGER NOT NULL REFERENCES models(id),
            at TEXT NOT NULL,
            actor TEXT NOT NULL,
            reason TEXT NOT NULL DEFAULT '',
            details_json TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX selections_scope ON selections(scope)
        """,
    )


@migration
def m005_spend_and_weights(db: sqlite3.Connection) -> None:
    # Money and checkpoints. `weights`: when a version's weights expire on the backend (NULL: kept)
    # and when chief deleted them (`chief registry gc`), one row per version that has had either.
    # `sessions`: the SDK sessions chief's commands opened, and what they worked for (`run:<id>`,
    # `eval:<ids>`), so billed usage can be attributed. `run_usage`: a training run's whole count so
    # far (its versions' usage stops at their checkpoint; the run's last inline eval comes after).
    # `billed`: what the backend's billing API reported for a session, by usage kind, as last read
    # (NULL dollars: the backend priced none).
    _run_script(
        db,
        """
        CREATE TABLE weights (
            model_id INTEGER PRIMARY KEY REFERENCES models(id),
            expires_at TEXT,
            deleted_at TEXT,
            deleted_bytes INTEGER,
            updated_at TEXT NOT NULL
        );
        CREATE TABLE sessions (
            session_id TEXT PRIMARY KEY,
            backend TEXT NOT NULL,
            command TEXT NOT NULL,
            scope TEXT NOT NULL,
            started_at TEXT NOT NULL
        );
        CREATE INDEX sessions_scope ON sessions(scope);
        CREATE TABLE run_usage (
            run_id TEXT PRIMARY KEY,
            base_model TEXT NOT NULL,
            train_tokens INTEGER NOT NULL,
            prefill_tokens INTEGER NOT NULL,
            sample_tokens INTEGER NOT NULL,
            machine_seconds REAL NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE TABLE billed (
            session_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            quantity REAL NOT NULL,
            dollars REAL,
            read_at TEXT NOT NULL,
            PRIMARY KEY (session_id, kind)
        ) WITHOUT ROWID
        """,
    )


@migration
def m006_exports(db: sqlite3.Connection) -> None:
    # `chief export` / `chief publish`: each verified export of a version, to a directory or a hub
    # repository. `weights_json` maps each weight file to its sha256; `max_abs_diff` is the
    # round-trip check's largest next-token log-prob difference from the serving backend, within
    # `tolerance`. A hub row also names the commit and its URL.
    _run_script(
        db,
        """
        CREATE TABLE exports (
            id INTEGER PRIMARY KEY,
            model_id INTEGER NOT NULL REFERENCES models(id),
            at TEXT NOT NULL,
            actor TEXT NOT NULL,
            format TEXT NOT NULL CHECK (format IN ('adapter', 'merged')),
            target TEXT NOT NULL CHECK (target IN ('dir', 'hub')),
            location TEXT NOT NULL,
            commit_sha TEXT,
            url TEXT,
            weights_json TEXT NOT NULL,
            max_abs_diff REAL NOT NULL,
            tolerance REAL NOT NULL,
            details_json TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX exports_model ON exports(model_id)
        """,
    )
