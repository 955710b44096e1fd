"""Status changes: check a promotion, apply it, retire a model, read the status history.

Promotion is two steps so a race is detected rather than silently won twice: `check` judges
the model on a read snapshot and remembers which model was prod; `apply` takes the write lock
and refuses if prod changed in between (two processes promoting at the same moment: exactly
one wins, the other gets a RegistryError). Demoting the old prod to staging and promoting the
new one happen in one transaction; the partial unique index on `status='prod'` backs it up.
Works on the `Ledger` that `Registry` hands it (transactions, audit and history rows).
"""

from __future__ import annotations

import sqlite3

from tinker_chief.errors import PromotionRejected, RegistryError
from tinker_chief.registry import _db
from tinker_chief.registry._gate import GateReport, evaluate_gate
from tinker_chief.registry._records import ModelRecord, StatusChange
from tinker_chief.registry._rows import find_model, latest_finished, list_models, load_samples
from tinker_chief.registry._scrub import scrub_text
from tinker_chief.registry._spend import weights_of
from tinker_chief.registry._tx import Ledger
from tinker_chief.registry.rules import GateRules, SuiteRequirement

PROMOTE_TARGETS = ("staging", "prod")


def check_promotion(
    ledger: Ledger, model_ref: str, to: str, suite: SuiteRequirement | None, rules: GateRules | None
) -> GateReport:
    """The gate's verdict for moving `model_ref` to `to` (staging has no gate)."""
    if to not in PROMOTE_TARGETS:
        raise RegistryError(
            f"promote: `to` is {to!r}; expected one of {', '.join(PROMOTE_TARGETS)}"
        )
    with ledger.read() as db:
        model = find_model(db, model_ref)
        _check_transition(model, to)
        weights = weights_of(db, model)
        if weights is not None and weights.deleted_at:
            raise RegistryError(
                f"{model.ref} cannot be promoted: its {weights.describe()} (chief registry gc)"
            )
        prod = next(iter(list_models(db, status="prod")), None)
        if to == "staging":
            return GateReport(
                model.ref,
                to,
                prod.ref if prod else None,
                suite.name if suite else None,
                suite.version if suite else None,
            )
        version = suite.version if suite else None
        results = latest_finished(db, model.id, version) if suite else {}
        prod_results = latest_finished(db, prod.id, version) if prod and suite else {}
        return evaluate_gate(
            model,
            results,
            prod,
            prod_results,
            suite,
            rules or GateRules(),
            lambda run_id: load_samples(db, run_id),
        )


def apply_promotion(
    ledger: Ledger, report: GateReport, *, actor: str, reason: str, force: bool
) -> ModelRecord:
    """Apply a checked promotion, or raise PromotionRejected listing every failing reason."""
    if force and not reason.strip():
        raise RegistryError('--force needs --reason "...": a forced promotion must say why')
    with ledger.write() as db:
        model = find_model(db, report.model_ref)
        prod = next(iter(list_models(db, status="prod")), None)
        if (prod.ref if prod else None) != report.prod_ref:
            raise RegistryError(
                f"promotion of {model.ref} refused: prod changed while the gate was being checked "
                f"(was {report.prod_ref or 'none'}, now {prod.ref if prod else 'none'}); "
                "re-run `chief promote` to judge it against the new prod"
            )
        _check_transition(model, report.to)
        if not report.passed and not force:
            # Committed (the rejection stays in the audit trail), then reported below.
            ledger.audit(
                actor, "promote-rejected", model.ref, {"to": report.to, "reasons": report.reasons}
            )
            promoted = None
        else:
            forced = force and not report.passed
            if report.to == "prod" and prod is not None:
                _set_status(
                    ledger, prod, "staging", actor, f"replaced as prod by {model.ref}", False
                )
            _set_status(ledger, model, report.to, actor, reason, forced)
            ledger.audit(
                actor,
                "promote",
                model.ref,
                {
                    "to": report.to,
                    "from": model.status,
                    "previous_prod": report.prod_ref,
                    "forced": forced,
                    "overridden_reasons": report.reasons if forced else [],
                    "reason": reason,
                    "suite": report.suite_name,
                    "suite_version": report.suite_version,
                },
            )
            promoted = find_model(db, model.ref)
    if promoted is None:
        raise PromotionRejected(
            f"{model.ref} was not promoted to {report.to}: {len(report.reasons)} gate rule(s) "
            'failed (use --force --reason "..." to override)',
            report.reasons,
        )
    return promoted


def retire(ledger: Ledger, model_ref: str, *, actor: str, reason: str) -> ModelRecord:
    with ledger.write() as db:
        model = find_model(db, model_ref)
        if model.status == "retired":
            raise RegistryError(f"{model.ref} is already retired")
        _set_status(ledger, model, "retired", actor, reason, False)
        ledger.audit(actor, "retire", model.ref, {"from": model.status, "reason": reason})
        return find_model(db, model.ref)


def status_history(connection: sqlite3.Connection, model_ref: str | None) -> list[StatusChange]:
    with _db.read(connection) as db:
        where, args = "", tuple[int, ...]()
        if model_ref is not None:
            where, args = "WHERE h.model_id = ?", (find_model(db, model_ref).id,)
        rows = db.execute(
            "SELECT m.name, m.version, h.from_status, h.to_status, h.at, h.actor, h.reason, "
            "h.forced FROM status_history h JOIN models m ON m.id = h.model_id "
            f"{where} ORDER BY h.id",
            args,
        ).fetchall()
    return [StatusChange(f"{r[0]}:v{r[1]}", r[2], r[3], r[4], r[5], r[6], bool(r[7])) for r in rows]


def _check_transition(model: ModelRecord, to: str) -> None:
    if model.status == "retired":
        raise RegistryError(f"{model.ref} is retired; register a new version to ship it again")
    if model.status == to:
        raise RegistryError(f"{model.ref} is already {to}")


def _set_status(
    ledger: Ledger, model: ModelRecord, to: str, actor: str, reason: str, forced: bool
) -> None:
    ledger.db.execute("UPDATE models SET status = ? WHERE id = ?", (to, model.id))
    ledger.history(model.id, model.status, to, actor, scrub_text(reason), forced)
