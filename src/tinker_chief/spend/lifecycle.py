"""The checkpoint lifecycle the registry drives: TTLs that follow status, and `chief registry gc`.

New training checkpoints are saved with `[checkpoints] ttl_days` (the loop; the registry notes
when they expire). Promotion to staging or prod clears the TTL of the version's checkpoints
(its sampler weights and the training state saved with them) and of every version it was
trained from; retiring one sets the TTL again from now, unless a prod or staging version still
descends from it. Changes go through the SDK (`RestClient.set_checkpoint_ttl_from_tinker_path`),
so the backend itself keeps or expires the files; the registry records each change (audit row
`weights-ttl`) only once the backend accepted it, so a failed change is retried by the next
`gc`, which first re-keeps every protected version.

`gc` deletes the weights of retired versions, of sweep points `chief select` did not choose and
of candidates whose TTL ran out (those are usually gone already: it records them), never of
prod, staging or their ancestors; it reports the bytes freed and, where the backend states a
storage rate, the monthly cost freed. A path that is already gone counts as deleted; any other
failure leaves that version's row untouched and is reported in one line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from tinker_chief.registry import Deletable, ModelRecord, Registry, weight_paths

if TYPE_CHECKING:
    import tinker

DAY_S = 86_400
GB = 1_000_000_000


def _why(exc: Exception) -> str:
    """An SDK error in one line (its message, without the body the SDK appends)."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:300]


def _gone(exc: Exception) -> bool:
    import tinker

    return isinstance(exc, tinker.NotFoundError)


def _set_ttl(rest: tinker.RestClient, paths: list[str], ttl_seconds: int | None) -> None:
    for path in paths:
        rest.set_checkpoint_ttl_from_tinker_path(path, ttl_seconds).result()


def keep(
    registry: Registry, rest: tinker.RestClient, models: list[ModelRecord], why: str
) -> list[str]:
    """Clear the TTL of the versions' weights; returns one line per version it could not keep."""
    problems = []
    for model in models:
        weights = registry.weights(model.ref)
        if weights is None or weights.deleted_at or weights.expires_at is None:
            continue  # no lifecycle of ours, already gone, or already kept
        try:
            _set_ttl(rest, weight_paths(model), None)
        except Exception as exc:
            problems.append(f"could not keep the weights of {model.ref}: {_why(exc)}")
            continue
        registry.set_weights_expiry(model.ref, None, reason=why)
    return problems


def after_status_change(
    registry: Registry, rest_factory: Callable[[], tinker.RestClient], ref: str, ttl_days: int
) -> list[str]:
    """Make the backend's TTLs follow `ref`'s new status; returns lines for the user (problems).

    `rest_factory` is called only when a TTL must change (it may start a local engine)."""
    model = registry.get_model(ref)
    if model.status in ("prod", "staging"):
        targets = [m for m in [model, *registry.lineage(ref)] if _expiring(registry, m)]
        return (
            keep(registry, rest_factory(), targets, f"{model.ref} is {model.status}")
            if targets
            else []
        )
    weights = registry.weights(ref)
    if weights is None or weights.deleted_at or weights.expires_at is not None or not ttl_days:
        return []  # no lifecycle of ours, gone, already expiring, or the project keeps everything
    if ref in registry.protected_models():
        return []  # a prod or staging version was trained from it
    try:
        _set_ttl(rest_factory(), weight_paths(model), ttl_days * DAY_S)
    except Exception as exc:
        return [f"could not set the TTL of {model.ref}'s weights: {_why(exc)}"]
    expires = datetime.now(UTC) + timedelta(days=ttl_days)
    registry.set_weights_expiry(ref, expires, reason=f"{model.status}: expires in {ttl_days} days")
    return []


def _expiring(registry: Registry, model: ModelRecord) -> bool:
    weights = registry.weights(model.ref)
    return weights is not None and not weights.deleted_at and weights.expires_at is not None


@dataclass
class GcItem:
    ref: str
    why: str
    paths: list[str]
    size_bytes: int = 0
    outcome: str = "would delete"  # deleted | already gone | would delete | failed: ...

    def to_dict(self) -> dict[str, object]:
        return {
            "model": self.ref,
            "why": self.why,
            "paths": self.paths,
            "bytes": self.size_bytes,
            "outcome": self.outcome,
        }


@dataclass
class GcReport:
    dry_run: bool
    items: list[GcItem]
    protected: dict[str, str]
    rate_usd_per_gb_month: float | None
    rate_note: str
    notes: list[str] = field(default_factory=list)

    @property
    def bytes_freed(self) -> int:
        done = ("deleted", "would delete")
        return sum(i.size_bytes for i in self.items if i.outcome in done)

    @property
    def monthly_usd_freed(self) -> float | None:
        rate = self.rate_usd_per_gb_month
        return None if rate is None else round(self.bytes_freed / GB * rate, 6)

    @property
    def failed(self) -> list[GcItem]:
        return [i for i in self.items if i.outcome.startswith("failed")]

    def to_dict(self) -> dict[str, object]:
        return {
            "dry_run": self.dry_run,
            "items": [i.to_dict() for i in self.items],
            "bytes_freed": self.bytes_freed,
            "monthly_usd_freed": self.monthly_usd_freed,
            "storage_rate_usd_per_gb_month": self.rate_usd_per_gb_month,
            "storage_rate_note": self.rate_note,
            "protected": self.protected,
            "notes": self.notes,
        }


def _sizes(rest: tinker.RestClient, paths: list[str], cache: dict[str, dict[str, int]]) -> int:
    """The stored bytes of `paths` as the backend lists them (0 for one it no longer lists)."""
    total = 0
    for path in paths:
        run = path.removeprefix("tinker://").split("/", 1)[0]
        if run not in cache:
            try:
                listed = rest.list_checkpoints(run).result().checkpoints
                cache[run] = {c.tinker_path: int(c.size_bytes or 0) for c in listed}
            except Exception:
                cache[run] = {}  # a run the backend no longer has: nothing of it is stored
        total += cache[run].get(path, 0)
    return total


def storage_rate(admin: tinker.AdminClient) -> tuple[float | None, str]:
    """The backend's storage rate ($/GB-month) from its billing API, or None and why not."""
    try:
        rate = (
            admin.get_current_checkpoint_storage_usage()
            .result()
            .effective_rate_usd_per_gigabyte_month
        )
    except Exception as exc:
        return None, f"the billing API refused the storage rate ({_why(exc)})"
    if rate is None:
        return None, "the backend states no storage rate (the local engine bills none)"
    return float(rate), "the backend's current storage rate"


def collect(
    registry: Registry,
    rest: tinker.RestClient,
    admin: tinker.AdminClient,
    *,
    dry_run: bool,
    actor: str | None = None,
) -> GcReport:
    """Delete (or, with `dry_run`, list) the weights `registry.gc_candidates()` names."""
    notes: list[str] = []
    protected = registry.protected_models()
    if not dry_run:  # a keep that failed at promotion is retried before anything is deleted
        notes += keep(
            registry, rest, [registry.get_model(ref) for ref in protected], "kept by gc (protected)"
        )
    kept_paths = {p for ref in protected for p in weight_paths(registry.get_model(ref))}
    rate, rate_note = storage_rate(admin)
    cache: dict[str, dict[str, int]] = {}
    items = []
    for candidate in registry.gc_candidates():
        items.append(_collect_one(registry, rest, candidate, kept_paths, cache, dry_run, actor))
    return GcReport(dry_run, items, protected, rate, rate_note, notes)


def _collect_one(
    registry: Registry,
    rest: tinker.RestClient,
    candidate: Deletable,
    kept_paths: set[str],
    cache: dict[str, dict[str, int]],
    dry_run: bool,
    actor: str | None,
) -> GcItem:
    paths = [p for p in candidate.paths() if p not in kept_paths]  # never a protected one's file
    item = GcItem(candidate.model.ref, candidate.why, paths, _sizes(rest, paths, cache))
    if dry_run:
        return item
    gone = 0
    for path in paths:
        try:
            rest.delete_checkpoint_from_tinker_path(path).result()
        except Exception as exc:
            if not _gone(exc):
                item.outcome = f"failed: {_why(exc)}"
                return item
            gone += 1
    item.outcome = "already gone" if gone == len(paths) else "deleted"
    registry.mark_weights_deleted(
        item.ref, item.size_bytes, actor=actor, reason=f"chief registry gc: {item.why}"
    )
    return item
