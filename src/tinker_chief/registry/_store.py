"""`Registry`: the one entry point to the registry database (models and eval runs).

Every public method that changes the file runs in ONE `BEGIN IMMEDIATE` transaction that also
writes its audit-log row, so a crash leaves either the whole change or none of it. Governance
(promote/retire) lives in `_governance.py`, comparison in `_compare.py`, export in `_export.py`;
`Registry` exposes them as methods so callers need a single object. They get its `Ledger`
(`_tx.py`: connection, clock, transactions, audit and history rows) or just the connection,
never the `Registry`, so none of them imports this module.

    reg = Registry.open(".chief/registry.db")
    model = reg.register_model("support-bot", base_model="SmolLM2-135M-Instruct-Q4_1", ...)
    reg.record_eval(
        model.ref, suite_name="chat", suite_version="3f2a...", task="gsm8k", metrics=[...]
    )
"""

from __future__ import annotations

import getpass
import hashlib
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from tinker_chief.errors import RegistryError
from tinker_chief.paths import REGISTRY, registry_file
from tinker_chief.registry import _compare, _db, _export, _governance, _rows, _spend
from tinker_chief.registry._compare import Comparison
from tinker_chief.registry._gate import GateReport
from tinker_chief.registry._records import (
    AuditEntry,
    DataFields,
    DataSummary,
    EvalRun,
    Export,
    LoraFields,
    LoraSpec,
    MetricValue,
    ModelRecord,
    SampleOutcome,
    Selection,
    StatusChange,
    Usage,
)
from tinker_chief.registry._rows import (
    dumps,
    find_model,
    latest_finished,
    load_samples,
    query_runs,
)
from tinker_chief.registry._scrub import scrub, scrub_optional, scrub_text
from tinker_chief.registry._spend import Deletable, SessionRow, Weights
from tinker_chief.registry._tx import Clock, Ledger, stamp_of
from tinker_chief.registry._validate import (
    check_export,
    check_model_fields,
    check_outcomes,
    check_run_status,
    check_usage,
    data_dict,
    lora_dict,
)
from tinker_chief.registry.rules import GateRules, SuiteRequirement

DEFAULT_PATH = REGISTRY  # relative to the project (tinker_chief.paths)


def default_path() -> Path:
    """`CHIEF_REGISTRY` if set, else `.chief/registry.db` in the current directory."""
    return registry_file(Path("."))


MAX_DETAIL_CHARS = 500  # per-sample details are hints for humans, not transcripts


def _short(text: str | None) -> str | None:
    return (
        text
        if text is None or len(text) <= MAX_DETAIL_CHARS
        else text[: MAX_DETAIL_CHARS - 1] + "…"
    )


def _scrubbed_outcomes(
    metrics: Iterable[MetricValue], samples: Iterable[SampleOutcome]
) -> tuple[list[MetricValue], list[SampleOutcome]]:
    """Metric names and sample ids as they are stored (key-looking text redacted), so the
    uniqueness checks see what is written."""
    return (
        [replace(m, name=scrub(m.name)) for m in metrics],
        [replace(s, sample_id=scrub(s.sample_id)) for s in samples],
    )


def default_actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name (containers): still record something honest
        return "unknown"


class Registry:
    """The model registry stored in one SQLite file. Open with `Registry.open(path)`."""

    def __init__(self, db: sqlite3.Connection, path: Path, clock: Clock | None = None) -> None:
        self._db = db
        self.path = path
        self._ledger = Ledger(db, clock)

    @classmethod
    def open(
        cls,
        path: Path | str | None = None,
        *,
        create: bool = True,
        clock: Clock | None = None,
        read_only: bool = False,
    ) -> Registry:
        """Open the registry at `path` (default: `default_path()`), migrating it forward.

        Raises RegistryError for a missing file with `create=False`, an empty, corrupt, damaged
        or foreign file and a newer schema; none of them is modified. `read_only` opens it
        without write access (for listing a registry the user may not write; changes then
        fail). `clock` fixes timestamps (tests, golden exports).
        """
        resolved = Path(path) if path is not None else default_path()
        return cls(_db.connect(resolved, create=create, read_only=read_only), resolved, clock)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        return _db.schema_version(self._db)

    def now(self) -> str:
        """UTC timestamp; inside a write, the transaction's one timestamp for all its rows."""
        return self._ledger.now()

    def _write(self) -> AbstractContextManager[sqlite3.Connection]:
        """A write transaction whose rows (model, history, audit) share one timestamp."""
        return self._ledger.write()

    # ----------------------------------------------------------------------------- models

    def register_model(
        self,
        name: str,
        *,
        base_model: str,
        backend: str = "local",
        recipe: str = "sl",
        tinker_path: str | None = None,
        display_name: str | None = None,
        lora: LoraSpec | LoraFields | None = None,
        optimizer: Mapping[str, object] | None = None,
        data: DataSummary | DataFields | None = None,
        parent: str | None = None,
        training_run_id: str | None = None,
        training_step: int | None = None,
        config: Mapping[str, object] | None = None,
        config_hash: str | None = None,
        usage: Usage | None = None,
        actor: str | None = None,
    ) -> ModelRecord:
        """Record a new version of model `name` (version = previous + 1) as a candidate.

        `optimizer` holds the optimizer and schedule (e.g. {"name": "adamw", "lr": 2e-4,
        "schedule": "linear"}); `config` is the full training config. Both are scrubbed of
        secrets. `parent` is a model ref (lineage). `usage`: what making it took (tokens, seconds).
        """
        check_model_fields(name, backend, recipe, tinker_path)
        lora_fields, data_fields = lora_dict(lora), data_dict(data)
        config_json = dumps(config or {})
        config_hash = config_hash or (
            hashlib.sha256(config_json.encode()).hexdigest()[:16] if config else None
        )
        # Free text the caller supplies is stored scrubbed (a key pasted into a field stays out of
        # the file); lookups by tinker path scrub the same way, so the model is still found by it.
        tinker_path, base_model = scrub_optional(tinker_path), scrub(base_model)
        config_hash = scrub_optional(config_hash)
        actor = actor or default_actor()
        with self._write() as db:
            parent_id = find_model(db, parent).id if parent else None
            if tinker_path is not None:
                self._refuse_duplicate_path(db, tinker_path)
            version = db.execute(
                "SELECT coalesce(max(version), 0) + 1 FROM models WHERE name = ?", (name,)
            ).fetchone()[0]
            model_id = db.execute(
                "INSERT INTO models (name, version, display_name, tinker_path, backend, "
                "base_model, recipe, lora_json, optimizer_json, data_json, parent_id, "
                "training_run_id, training_step, config_hash, config_json, status, created_at, "
                "train_tokens, prefill_tokens, sample_tokens, machine_seconds) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,'candidate',?,?,?,?,?)",
                (
                    name,
                    version,
                    scrub_text(display_name or f"{name} v{version}"),
                    tinker_path,
                    backend,
                    base_model,
                    recipe,
                    dumps(lora_fields) if lora_fields is not None else None,
                    dumps(optimizer or {}),
                    dumps(data_fields),
                    parent_id,
                    scrub_optional(training_run_id),
                    training_step,
                    config_hash,
                    config_json,
                    self.now(),
                    *check_usage(usage),
                ),
            ).lastrowid
            assert model_id is not None  # an INSERT always sets lastrowid
            self._ledger.history(model_id, None, "candidate", actor, "registered", False)
            self._ledger.audit(
                actor,
                "register",
                f"{name}:v{version}",
                {"base_model": base_model, "recipe": recipe, "backend": backend},
            )
            return find_model(db, f"{name}:v{version}")

    def get_model(self, ref: str) -> ModelRecord:
        """The model named by `ref`: "name:vN", "name" (latest version) or its tinker:// path."""
        with _db.read(self._db) as db:
            return find_model(db, ref)

    def list_models(self, *, status: str | None = None) -> list[ModelRecord]:
        """All models, ordered by name then version (optionally only those with `status`)."""
        with _db.read(self._db) as db:
            return _rows.list_models(db, status)

    def prod_model(self) -> ModelRecord | None:
        models = self.list_models(status="prod")
        return models[0] if models else None

    # ---------------------------------------------------------------------------- evals

    def start_eval_run(
        self,
        model_ref: str,
        *,
        suite_name: str,
        suite_version: str,
        task: str,
        settings: Mapping[str, object] | None = None,
        headline_metric: str | None = None,
        log_location: str | None = None,
        actor: str | None = None,
    ) -> int:
        """Record that an eval of `task` on `model_ref` began; returns the run id."""
        with self._write() as db:
            run_id = self._insert_run(
                db,
                model_ref,
                suite_name,
                suite_version,
                task,
                settings,
                headline_metric,
                log_location,
                None,
            )
            self._ledger.audit(
                actor or default_actor(),
                "eval-start",
                find_model(db, model_ref).ref,
                {
                    "run_id": run_id,
                    "suite": suite_name,
                    "suite_version": suite_version,
                    "task": task,
                },
            )
            return run_id

    def finish_eval_run(
        self,
        run_id: int,
        *,
        metrics: Iterable[MetricValue] = (),
        samples: Iterable[SampleOutcome] = (),
        status: str = "finished",
        error: str | None = None,
        log_location: str | None = None,
        actor: str | None = None,
    ) -> EvalRun:
        """Close a running eval with its metrics and per-sample outcomes, all in one transaction."""
        check_run_status(status)
        metrics, samples = _scrubbed_outcomes(metrics, samples)
        with self._write() as db:
            row = db.execute("SELECT status FROM eval_runs WHERE id = ?", (int(run_id),)).fetchone()
            if row is None:
                raise RegistryError(f"finish_eval_run: no eval run with id {run_id}")
            if row[0] != "running":
                raise RegistryError(f"finish_eval_run: eval run {run_id} is already {row[0]}")
            run = query_runs(db, "r.id = ?", (run_id,))[0]
            check_outcomes(run.task, metrics, samples)
            self._complete_run(db, run_id, metrics, samples, status, error, log_location)
            self._ledger.audit(
                actor or default_actor(),
                "eval-finish",
                run.model_ref,
                {"run_id": run_id, "task": run.task, "status": status},
            )
            return query_runs(db, "r.id = ?", (run_id,))[0]

    def record_eval(
        self,
        model_ref: str,
        *,
        suite_name: str,
        suite_version: str,
        task: str,
        metrics: Iterable[MetricValue],
        samples: Iterable[SampleOutcome] = (),
        settings: Mapping[str, object] | None = None,
        headline_metric: str | None = None,
        log_location: str | None = None,
        status: str = "finished",
        error: str | None = None,
        started_at: datetime | None = None,
        usage: Usage | None = None,
        actor: str | None = None,
    ) -> EvalRun:
        """Record a whole eval run (run, metrics, samples, audit) in one transaction.

        `started_at` is when the eval began (default: now, like `finished_at`); `usage` the tokens
        it prefilled and sampled and its machine seconds (`train_tokens` must be None).
        """
        check_run_status(status)
        metrics, samples = _scrubbed_outcomes(metrics, samples)
        check_outcomes(scrub(task), metrics, samples)
        with self._write() as db:
            run_id = self._insert_run(
                db,
                model_ref,
                suite_name,
                suite_version,
                task,
                settings,
                headline_metric,
                log_location,
                started_at,
            )
            self._complete_run(db, run_id, metrics, samples, status, error, None)
            if usage is not None:
                _train, prefill, sample, seconds = check_usage(usage, eval_run=True)
                db.execute(
                    "UPDATE eval_runs SET prefill_tokens = ?, sample_tokens = ?, "
                    "machine_seconds = ? WHERE id = ?",
                    (prefill, sample, seconds, run_id),
                )
            run = query_runs(db, "r.id = ?", (run_id,))[0]
            self._ledger.audit(
                actor or default_actor(),
                "eval",
                run.model_ref,
                {
                    "run_id": run_id,
                    "suite": suite_name,
                    "suite_version": suite_version,
                    "task": task,
                    "status": status,
                },
            )
            return run

    def eval_runs(self, model_ref: str, *, task: str | None = None) -> list[EvalRun]:
        """Every eval run of a model (any status, any suite version), by task then age."""
        with _db.read(self._db) as db:
            model = find_model(db, model_ref)
            if task is None:
                return query_runs(db, "r.model_id = ?", (model.id,))
            return query_runs(db, "r.model_id = ? AND r.task = ?", (model.id, scrub_text(task)))

    def eval_runs_by_id(self, run_ids: Sequence[int]) -> list[EvalRun]:
        """The eval runs with these ids (any model), by id."""
        ids = [int(i) for i in run_ids]
        with _db.read(self._db) as db:
            found = (
                query_runs(db, f"r.id IN ({', '.join('?' for _ in ids)})", tuple(ids))
                if ids
                else []
            )
        return sorted(found, key=lambda run: run.id)

    def latest_results(
        self, model_ref: str, suite_version: str | None = None
    ) -> dict[str, EvalRun]:
        """Per task, the model's latest finished run (only on `suite_version` when given)."""
        with _db.read(self._db) as db:
            return latest_finished(db, find_model(db, model_ref).id, suite_version)

    def samples(self, run_id: int) -> list[SampleOutcome]:
        """The per-sample outcomes of one eval run, by sample id."""
        with _db.read(self._db) as db:
            return load_samples(db, run_id)

    # ----------------------------------------------------------------------- governance

    def check_promotion(
        self,
        model_ref: str,
        to: str = "prod",
        *,
        suite: SuiteRequirement | None = None,
        rules: GateRules | None = None,
    ) -> GateReport:
        """Judge a promotion without changing anything (what `promote` would decide)."""
        stored = suite.as_stored() if suite else None
        return _governance.check_promotion(self._ledger, model_ref, to, stored, rules)

    def promote(
        self,
        model_ref: str,
        to: str = "prod",
        *,
        suite: SuiteRequirement | None = None,
        rules: GateRules | None = None,
        actor: str | None = None,
        reason: str = "",
        force: bool = False,
    ) -> ModelRecord:
        """Move a model to staging or prod; prod goes through the gate.

        Raises PromotionRejected (with `.reasons`, every failing rule) unless the gate passes
        or `force` is set with a `reason`. The old prod becomes staging in the same transaction.
        """
        report = self.check_promotion(model_ref, to, suite=suite, rules=rules)
        return self.apply_promotion(report, actor=actor, reason=reason, force=force)

    def apply_promotion(
        self, report: GateReport, *, actor: str | None = None, reason: str = "", force: bool = False
    ) -> ModelRecord:
        """Apply a `check_promotion` verdict; refuses if prod changed since the check."""
        return _governance.apply_promotion(
            self._ledger, report, actor=actor or default_actor(), reason=reason, force=force
        )

    def retire(self, model_ref: str, *, actor: str | None = None, reason: str = "") -> ModelRecord:
        """Mark a model retired (any status; a retired prod leaves the project without prod)."""
        return _governance.retire(
            self._ledger, model_ref, actor=actor or default_actor(), reason=reason
        )

    def status_history(self, model_ref: str | None = None) -> list[StatusChange]:
        """Status changes, oldest first (of one model when `model_ref` is given)."""
        return _governance.status_history(self._db, model_ref)

    # ------------------------------------------------------------------------ selections

    def mark_selected(
        self,
        model_ref: str,
        scope: str,
        *,
        reason: str = "",
        details: Mapping[str, object] | None = None,
        actor: str | None = None,
    ) -> Selection:
        """Record `model_ref` as the chosen candidate of `scope` (`sweep:<id>`, `run:<id>`); a later
        mark of the same scope supersedes it. The model's status is unchanged: this is not
        promotion."""
        if not isinstance(scope, str) or not scope.strip():
            raise RegistryError(
                f"selection scope is {scope!r}; expected `sweep:<id>` or `run:<id>`"
            )
        actor = actor or default_actor()
        with self._write() as db:
            model = find_model(db, model_ref)
            db.execute(
                "INSERT INTO selections (scope, model_id, at, actor, reason, details_json) "
                "VALUES (?,?,?,?,?,?)",
                (
                    scrub_text(scope),
                    model.id,
                    self.now(),
                    scrub_text(actor),
                    scrub_text(reason),
                    dumps(details or {}),
                ),
            )
            self._ledger.audit(
                actor, "select", model.ref, {"scope": scope, "reason": scrub_text(reason)}
            )
        return self.selections(scope)[-1]

    def selections(
        self, scope: str | None = None, *, model_ref: str | None = None
    ) -> list[Selection]:
        """Selections, oldest first (of one scope and/or one model when given); the last of a scope
        is its candidate (`current`)."""
        with _db.read(self._db) as db:
            model_id = find_model(db, model_ref).id if model_ref is not None else None
            return _rows.selections(db, scope, model_id)

    # ----------------------------------------------------- weights and spend (_spend.py)

    def weights(self, model_ref: str) -> Weights | None:
        """Where the version's weights stand (expiry, deletion); None: nothing recorded."""
        with _db.read(self._db) as db:
            return _spend.weights_of(db, find_model(db, model_ref))

    def set_weights_expiry(
        self,
        model_ref: str,
        expires_at: datetime | None,
        *,
        actor: str | None = None,
        reason: str = "",
    ) -> Weights:
        """Record when the version's weights expire on the backend (None: kept for good)."""
        stamp = stamp_of(expires_at) if expires_at is not None else None
        return _spend.set_expiry(self._ledger, model_ref, stamp, actor or default_actor(), reason)

    def mark_weights_deleted(
        self, model_ref: str, size_bytes: int | None, *, actor: str | None = None, reason: str = ""
    ) -> Weights:
        """Record that the version's weights were deleted (or found gone) now."""
        return _spend.mark_deleted(
            self._ledger, model_ref, size_bytes, actor or default_actor(), reason
        )

    def protected_models(self) -> dict[str, str]:
        """Refs whose weights are kept, with why: prod, staging and their ancestors."""
        with _db.read(self._db) as db:
            return _spend.protected(db)

    def gc_candidates(self) -> list[Deletable]:
        """Versions whose weights `chief registry gc` deletes now, each with why."""
        with _db.read(self._db) as db:
            return _spend.deletable(db, self.now())

    def lineage(self, model_ref: str) -> list[ModelRecord]:
        """The versions `model_ref` was trained from, nearest first."""
        with _db.read(self._db) as db:
            return _spend.ancestors(db, find_model(db, model_ref))

    def record_session(self, session_id: str, *, backend: str, command: str, scope: str) -> None:
        """Remember an SDK session a command opened and what it worked for (`run:<id>`,
        `eval:<ids>`)."""
        _spend.record_session(self._ledger, session_id, backend, command, scope)

    def sessions(self, scope: str | None = None) -> list[SessionRow]:
        with _db.read(self._db) as db:
            return _spend.session_rows(db, scope)

    def record_run_usage(self, run_id: str, base_model: str, usage: Usage) -> None:
        """A training run's whole count so far (its last inline eval comes after its last
        checkpoint)."""
        _spend.record_run_usage(self._ledger, run_id, base_model, usage)

    def run_usage(self, run_id: str) -> Usage | None:
        with _db.read(self._db) as db:
            return _spend.run_usage(db, run_id)

    def billed_for(self, scope: str) -> dict[str, float] | None:
        """What the backend billed a scope's sessions (`run:<id>`), as `chief cost` last read it."""
        with _db.read(self._db) as db:
            return _spend.billed_summary(db, scope)

    def record_billed(self, session_id: str, usage: dict[str, tuple[float, float | None]]) -> None:
        """What the billing API reported for a session: kind -> (quantity, dollars or None)."""
        _spend.record_billed(self._ledger, session_id, usage)

    def billed(self, session_ids: list[str]) -> dict[str, dict[str, tuple[float, float | None]]]:
        with _db.read(self._db) as db:
            return _spend.billed_rows(db, session_ids)

    def spent(self, since: str | None = None, exclude_runs: Iterable[str] = ()) -> dict[str, Usage]:
        """Chief's own count of the project's usage by base model (training runs and eval runs),
        without the training runs `exclude_runs`."""
        with _db.read(self._db) as db:
            return _spend.spent_by_base_model(db, since, set(exclude_runs))

    # --------------------------------------------------------------------------- exports

    def record_export(
        self,
        model_ref: str,
        *,
        format: str,
        target: str,
        location: str,
        weights: dict[str, str],
        max_abs_diff: float,
        tolerance: float,
        commit_sha: str | None = None,
        url: str | None = None,
        details: Mapping[str, object] | None = None,
        actor: str | None = None,
    ) -> Export:
        """Record a verified export of `model_ref` (`chief export`: `target` "dir", `location` the
        directory; `chief publish`: "hub", the repo id, with `commit_sha` and `url`) and its audit
        row, in one transaction. `weights`: file name -> sha256; `max_abs_diff` the round-trip
        check's result, at most `tolerance`."""
        check_export(format, target, location, weights, max_abs_diff, tolerance)
        actor = actor or default_actor()
        command = "publish" if target == "hub" else "export"
        with self._write() as db:
            model = find_model(db, model_ref)
            db.execute(
                "INSERT INTO exports (model_id, at, actor, format, target, location, commit_sha, "
                "url, weights_json, max_abs_diff, tolerance, details_json) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    model.id,
                    self.now(),
                    scrub_text(actor),
                    format,
                    target,
                    scrub_text(location),
                    scrub_optional(commit_sha),
                    scrub_optional(url),
                    dumps(weights),
                    float(max_abs_diff),
                    float(tolerance),
                    dumps(details or {}),
                ),
            )
            audit = {"format": format, "location": location, "max_abs_diff": max_abs_diff}
            audit.update({"commit": commit_sha, "url": url} if target == "hub" else {})
            self._ledger.audit(actor, command, model.ref, {**audit, **(details or {})})
        return self.exports(model.ref)[-1]

    def exports(self, model_ref: str | None = None) -> list[Export]:
        """Recorded exports and publications, oldest first (of one model when given)."""
        with _db.read(self._db) as db:
            model_id = find_model(db, model_ref).id if model_ref is not None else None
            return _rows.exports(db, model_id)

    # ------------------------------------------------------------------ compare, export

    def compare(
        self,
        model_refs: Sequence[str],
        metrics: Sequence[str] | None = None,
        *,
        suite_version: str | None = None,
        rules: GateRules | None = None,
    ) -> Comparison:
        """Models x metrics with deltas vs the first model, CIs, best per metric, paired tests."""
        return _compare.compare(self._db, model_refs, metrics, suite_version, rules or GateRules())

    def export_markdown(self, *, suite: SuiteRequirement | None = None) -> str:
        """`MODEL_REGISTRY.md`: deterministic text of every model, its evals and history."""
        return _export.export_markdown(self._db, suite.as_stored() if suite else None)

    def export_json(self, *, suite: SuiteRequirement | None = None) -> dict[str, object]:
        """The registry as one JSON-able dict (same content as the markdown export)."""
        return _export.export_json(self._db, suite.as_stored() if suite else None)

    # ------------------------------------------------------------------------ internals

    def _insert_run(
        self,
        db: sqlite3.Connection,
        model_ref: str,
        suite_name: str,
        suite_version: str,
        task: str,
        settings: Mapping[str, object] | None,
        headline_metric: str | None,
        log_location: str | None,
        started_at: datetime | None,
    ) -> int:
        model = find_model(db, model_ref)
        for field, value in (
            ("suite_name", suite_name),
            ("suite_version", suite_version),
            ("task", task),
        ):
            if not isinstance(value, str) or not value:
                raise RegistryError(
                    f"eval run: `{field}` is {value!r}; expected a non-empty string"
                )
        started = stamp_of(started_at) if started_at else self.now()
        suite_name, suite_version = scrub_text(suite_name), scrub_text(suite_version)
        task = scrub_text(task)
        run_id = db.execute(
            "INSERT INTO eval_runs (model_id, suite_name, suite_version, task, headline_metric, "
            "settings_json, status, started_at, log_location) "
            "VALUES (?,?,?,?,?,?, 'running', ?, ?)",
            (
                model.id,
                suite_name,
                suite_version,
                task,
                scrub(headline_metric),
                dumps(settings or {}),
                started,
                scrub_optional(log_location),
            ),
        ).lastrowid
        assert run_id is not None  # an INSERT always sets lastrowid
        return run_id

    def _refuse_duplicate_path(self, db: sqlite3.Connection, tinker_path: str) -> None:
        row = db.execute(
            "SELECT name, version FROM models WHERE tinker_path = ?", (tinker_path,)
        ).fetchone()
        if row is not None:
            raise RegistryError(
                f"{scrub_text(tinker_path)} is already registered as {row[0]}:v{row[1]}; "
                "use that ref (get_model accepts the tinker:// path) instead of registering it "
                "again"
            )

    def _complete_run(
        self,
        db: sqlite3.Connection,
        run_id: int,
        metrics: list[MetricValue],
        samples: list[SampleOutcome],
        status: str,
        error: str | None,
        log_location: str | None,
    ) -> None:
        db.executemany(
            "INSERT INTO metrics (run_id, name, value, ci_low, ci_high, n) VALUES (?,?,?,?,?,?)",
            [(run_id, m.name, float(m.value), m.ci_low, m.ci_high, m.n) for m in metrics],
        )
        db.executemany(
            "INSERT INTO samples (run_id, sample_id, score, passed, detail) VALUES (?,?,?,?,?)",
            [
                (
                    run_id,
                    s.sample_id,
                    float(s.score),
                    None if s.passed is None else int(s.passed),
                    _short(scrub_optional(s.detail)),
                )
                for s in samples
            ],
        )
        db.execute(
            "UPDATE eval_runs SET status = ?, finished_at = ?, error = ?, "
            "log_location = coalesce(?, log_location) WHERE id = ?",
            (status, self.now(), scrub_optional(error), scrub_optional(log_location), run_id),
        )

    def audit_log(self, *, limit: int | None = None) -> list[AuditEntry]:
        """Registry-changing commands, oldest first (the last `limit` when given)."""
        with _db.read(self._db) as db:
            return _rows.audit_log(db, limit)
