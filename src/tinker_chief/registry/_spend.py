"""Money and checkpoints in the registry: weights' lifetimes, SDK sessions, billed usage, spend.

Rows (schema `m005_spend_and_weights`):

- `weights`: per version, when its weights expire on the backend (NULL: kept for good) and
  when `chief registry gc` deleted them; every change writes an audit row (`weights-ttl`,
  `weights-delete`), so the lifecycle is auditable like promotion.
- `sessions`: each SDK session a command opened and what it worked for: `run:<run id>` (a
  training run; resuming adds a session), `eval:<ids>` (the eval runs one `chief eval` recorded).
- `billed`: what the backend's billing API said a session used, by kind, as last read.

The rules of the checkpoint lifecycle live here too, as pure functions of the rows: which
versions are protected (prod, staging, and every ancestor they were trained from) and which
`gc` may delete (retired versions, sweep points `chief select` passed over, candidates whose
weights expired), never a protected one. Works on the `Ledger` (`_tx.py`) like `_governance`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from tinker_chief.registry._records import ModelRecord, Usage, _AsDict
from tinker_chief.registry._rows import find_model, list_models, selections
from tinker_chief.registry._scrub import scrub_text
from tinker_chief.registry._tx import Ledger

PROTECTED = ("prod", "staging")
BILLED_KINDS = (
    "training",
    "sampling_prefill",
    "sampling_prefill_cached",
    "sampling_sample",
    "checkpoint",
    "storage",
)


@dataclass(frozen=True)
class Weights(_AsDict):
    """Where a version's weights stand: expiring at `expires_at`, or deleted at `deleted_at`."""

    model_ref: str
    expires_at: str | None
    deleted_at: str | None
    deleted_bytes: int | None

    def describe(self) -> str:
        if self.deleted_at:
            return f"weights deleted on {self.deleted_at[:10]}"
        if self.expires_at:
            return f"weights expire on {self.expires_at[:10]} unless promoted"
        return "weights kept (no expiry)"


@dataclass(frozen=True)
class SessionRow(_AsDict):
    session_id: str
    backend: str
    command: str
    scope: str
    started_at: str


@dataclass(frozen=True)
class Deletable(_AsDict):
    """A version `gc` may delete the weights of, and why."""

    model: ModelRecord
    why: str

    def paths(self) -> list[str]:
        return weight_paths(self.model)


def weight_paths(model: ModelRecord) -> list[str]:
    """The checkpoints a version's weights are: its sampler weights and the training state saved
    with them (what `--resume` and a child run start from)."""
    state = model.config.get("state_path")
    return [
        p for p in (model.tinker_path, state) if isinstance(p, str) and p.startswith("tinker://")
    ]


# -- weights ------------------------------------------------------------------------------------


def weights_of(db: sqlite3.Connection, model: ModelRecord) -> Weights | None:
    row = db.execute(
        "SELECT expires_at, deleted_at, deleted_bytes FROM weights WHERE model_id = ?", (model.id,)
    ).fetchone()
    return None if row is None else Weights(model.ref, *row)


def all_weights(db: sqlite3.Connection) -> dict[str, Weights]:
    rows = db.execute(
        "SELECT m.name, m.version, w.expires_at, w.deleted_at, w.deleted_bytes "
        "FROM weights w JOIN models m ON m.id = w.model_id"
    ).fetchall()
    return {f"{r[0]}:v{r[1]}": Weights(f"{r[0]}:v{r[1]}", *r[2:]) for r in rows}


def _change(
    ledger: Ledger,
    model_ref: str,
    fields: Mapping[str, str | int | None],
    command: str,
    details: Mapping[str, object],
    actor: str,
) -> Weights:
    """Upsert the version's `weights` row with `fields`, and its audit row, in one transaction."""
    with ledger.write() as db:
        model = find_model(db, model_ref)
        names = ", ".join(fields)
        updates = ", ".join(f"{name} = excluded.{name}" for name in fields)
        db.execute(
            f"""INSERT INTO weights (model_id, {names}, updated_at)
                VALUES (?, {", ".join("?" for _ in fields)}, ?)
                ON CONFLICT (model_id) DO UPDATE SET {updates}, updated_at = excluded.updated_at""",
            (model.id, *fields.values(), ledger.now()),
        )
        ledger.audit(actor, command, model.ref, details)
        found = weights_of(db, model)
    assert found is not None
    return found


def set_expiry(
    ledger: Ledger, model_ref: str, expires_at: str | None, actor: str, reason: str
) -> Weights:
    """Record that the version's weights now expire at `expires_at` (None: kept)."""
    details = {"expires_at": expires_at, "reason": scrub_text(reason)}
    return _change(ledger, model_ref, {"expires_at": expires_at}, "weights-ttl", details, actor)


def mark_deleted(
    ledger: Ledger, model_ref: str, size_bytes: int | None, actor: str, reason: str
) -> Weights:
    """Record that the version's weights are gone (deleted now by `gc`, or found expired)."""
    with ledger.read() as db:
        paths = weight_paths(find_model(db, model_ref))
    fields = {"deleted_at": ledger.now(), "deleted_bytes": size_bytes}
    details = {"bytes": size_bytes, "paths": paths, "reason": scrub_text(reason)}
    return _change(ledger, model_ref, fields, "weights-delete", details, actor)


# -- lifecycle rules ----------------------------------------------------------------------------


def ancestors(db: sqlite3.Connection, model: ModelRecord) -> list[ModelRecord]:
    """The versions `model` was trained from, nearest first (lineage `parent`)."""
    found, seen = [], {model.id}
    current = model
    while current.parent_ref is not None:
        current = find_model(db, current.parent_ref)
        if current.id in seen:  # a cycle cannot be written, but never loop on a damaged file
            break
        seen.add(current.id)
        found.append(current)
    return found


def protected(db: sqlite3.Connection) -> dict[str, str]:
    """Refs whose weights must be kept, with why: prod, staging, and what they descend from."""
    kept: dict[str, str] = {}
    for model in list_models(db):
        if model.status in PROTECTED:
            kept.setdefault(model.ref, model.status)
            for parent in ancestors(db, model):
                kept.setdefault(parent.ref, f"parent of {model.status} {model.ref}")
    return kept


def deletable(db: sqlite3.Connection, now: str) -> list[Deletable]:
    """Versions whose weights `gc` deletes, oldest first: retired ones, sweep points `chief select`
    did not choose, candidates whose weights expired; never a protected one or one already gone."""
    kept, gone = protected(db), {ref for ref, w in all_weights(db).items() if w.deleted_at}
    weights = all_weights(db)
    chosen = {mark.scope: mark.model_ref for mark in selections(db, None, None) if mark.current}
    found = []
    for model in list_models(db):
        if model.ref in kept or model.ref in gone or not weight_paths(model):
            continue
        tag = model.config.get("sweep")
        sweep = tag.get("id") if isinstance(tag, dict) else None
        expiry = weights.get(model.ref)
        if model.status == "retired":
            found.append(Deletable(model, "retired"))
        elif sweep and f"sweep:{sweep}" in chosen and chosen[f"sweep:{sweep}"] != model.ref:
            found.append(Deletable(model, f"not chosen by chief select for sweep {sweep}"))
        elif expiry and expiry.expires_at and expiry.expires_at <= now:
            found.append(
                Deletable(model, f"candidate whose weights expired on {expiry.expires_at[:10]}")
            )
    return found


# -- sessions, billed usage, spend --------------------------------------------------------------


def record_session(ledger: Ledger, session_id: str, backend: str, command: str, scope: str) -> None:
    with ledger.write() as db:
        db.execute(
            """INSERT OR IGNORE INTO sessions (session_id, backend, command, scope, started_at)
               VALUES (?, ?, ?, ?, ?)""",
            (scrub_text(session_id), backend, command, scrub_text(scope), ledger.now()),
        )


def session_rows(db: sqlite3.Connection, scope: str | None = None) -> list[SessionRow]:
    where, args = ("WHERE scope = ?", (scope,)) if scope is not None else ("", ())
    rows = db.execute(
        f"""SELECT session_id, backend, command, scope, started_at FROM sessions {where}
            ORDER BY started_at, rowid""",
        args,
    ).fetchall()
    return [SessionRow(*row) for row in rows]


def record_run_usage(ledger: Ledger, run_id: str, base_model: str, usage: Usage) -> None:
    """A training run's whole count so far (replaces the previous one)."""
    counts = [usage.train_tokens or 0, usage.prefill_tokens or 0, usage.sample_tokens or 0]
    with ledger.write() as db:
        db.execute(
            """INSERT OR REPLACE INTO run_usage (run_id, base_model, train_tokens, prefill_tokens,
               sample_tokens, machine_seconds, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)""",
            (
                scrub_text(run_id),
                scrub_text(base_model),
                *counts,
                usage.machine_seconds or 0.0,
                ledger.now(),
            ),
        )


def run_usage(db: sqlite3.Connection, run_id: str) -> Usage | None:
    row = db.execute(
        """SELECT train_tokens, prefill_tokens, sample_tokens, machine_seconds
           FROM run_usage WHERE run_id = ?""",
        (scrub_text(run_id),),
    ).fetchone()
    return Usage(*row) if row else None


def record_billed(
    ledger: Ledger, session_id: str, usage: dict[str, tuple[float, float | None]]
) -> None:
    """Replace what the billing API said `session_id` used: kind -> (quantity, dollars or None)."""
    with ledger.write() as db:
        db.execute("DELETE FROM billed WHERE session_id = ?", (session_id,))
        db.executemany(
            """INSERT INTO billed (session_id, kind, quantity, dollars, read_at)
               VALUES (?, ?, ?, ?, ?)""",
            [
                (session_id, kind, float(q), d, ledger.now())
                for kind, (q, d) in sorted(usage.items())
            ],
        )


def billed_rows(
    db: sqlite3.Connection, session_ids: list[str]
) -> dict[str, dict[str, tuple[float, float | None]]]:
    """session -> kind -> (quantity, dollars) for the sessions read so far."""
    found: dict[str, dict[str, tuple[float, float | None]]] = {}
    for sid in session_ids:
        rows = db.execute(
            "SELECT kind, quantity, dollars FROM billed WHERE session_id = ?", (sid,)
        ).fetchall()
        if rows:
            found[sid] = {kind: (quantity, dollars) for kind, quantity, dollars in rows}
    return found


def billed_summary(db: sqlite3.Connection, scope: str) -> dict[str, float] | None:
    """What was billed for `scope`'s sessions (as last read by `chief cost`), summed by kind, the
    prefill cache folded in; None when nothing was read for them."""
    rows = db.execute(
        """SELECT b.kind, sum(b.quantity)
           FROM billed b JOIN sessions s ON s.session_id = b.session_id
           WHERE s.scope = ? GROUP BY b.kind""",
        (scrub_text(scope),),
    ).fetchall()
    if not rows:
        return None
    kinds = dict(rows)
    kinds["sampling_prefill"] = kinds.get("sampling_prefill", 0.0) + kinds.pop(
        "sampling_prefill_cached", 0.0
    )
    return kinds


def describe_billed(kinds: dict[str, float] | None) -> str:
    if kinds is None:
        return "not read yet (`chief cost` reads the billing API)"
    train, prefill, sample = (
        int(kinds.get(k, 0)) for k in ("training", "sampling_prefill", "sampling_sample")
    )
    kinds_text = f"{train:,} trained, {prefill:,} prefilled, {sample:,} sampled"
    return f"{train + prefill + sample:,} tokens billed ({kinds_text})"


def spent_by_base_model(
    db: sqlite3.Connection, since: str | None = None, exclude_runs: Collection[str] = ()
) -> dict[str, Usage]:
    """What the project's work used, by base model, from chief's own counts: each training run's
    whole count (`run_usage`; for a run from before it, its latest checkpoint's cumulative usage)
    plus every eval run; `since` keeps the work recorded from that UTC time on; `exclude_runs`
    leaves those training runs out (runs about to resume, which count themselves)."""
    totals: dict[str, list[Usage]] = {}
    at = since or ""
    excluded = sorted(exclude_runs)
    marks = ", ".join("?" * len(excluded))
    # A run's whole count where it was recorded, else its latest checkpoint's (runs from before).
    runs = db.execute(
        f"""SELECT base_model, train_tokens, prefill_tokens, sample_tokens, machine_seconds
           FROM run_usage WHERE updated_at >= ? AND run_id NOT IN ({marks})""",
        (at, *excluded),
    ).fetchall()
    runs += db.execute(
        f"""SELECT m.base_model, m.train_tokens, m.prefill_tokens, m.sample_tokens,
                  m.machine_seconds
           FROM models m
           WHERE m.training_run_id IS NOT NULL AND m.created_at >= ?
           AND m.training_run_id NOT IN ({marks})
           AND m.training_run_id NOT IN (SELECT run_id FROM run_usage)
           AND m.training_step = (
               SELECT max(o.training_step) FROM models o WHERE o.training_run_id = m.training_run_id
           )""",
        (at, *excluded),
    ).fetchall()
    evals = db.execute(
        "SELECT m.base_model, NULL, r.prefill_tokens, r.sample_tokens, r.machine_seconds "
        "FROM eval_runs r JOIN models m ON m.id = r.model_id WHERE r.started_at >= ?",
        (at,),
    ).fetchall()
    for base, *usage in [*runs, *evals]:
        totals.setdefault(base, []).append(Usage(*usage))
    return {base: Usage.total(usages) for base, usages in totals.items()}


def summary(db: sqlite3.Connection, model: ModelRecord) -> dict[str, object]:
    """The weights facts `registry show` prints for one version."""
    weights = weights_of(db, model)
    return {"weights": weights.to_dict() if weights else None, "paths": weight_paths(model)}
