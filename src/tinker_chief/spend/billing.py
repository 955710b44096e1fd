"""Billed spend: read the backend's billing API, attribute it to runs and eval runs, reconcile.

Every command records the SDK sessions it opened (`Registry.record_session`): a training run
gets a session of its own (`run:<run id>`, one more per `--resume`), one `chief eval` its
connection's session (`eval:<eval run ids>`). `read_billed` asks the backend's billing API
(`AdminClient.get_billing_usage`, in windows of at most 14 days, from the hour the oldest
session started) for those sessions' hourly events and stores their sums per session and kind
(`Registry.record_billed`). Tinker's cloud needs a key with the billing role; a refusal is one
line and the counted figures still show. The local engine always answers, from its counters.

`reconcile` puts three numbers side by side per item: the plan's estimate, chief's own count
(the registry's usage), and the billed count, in tokens and in dollars at the dated price table
(billed dollars are the backend's own estimate where it priced every event).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from tinker_chief.registry import ModelRecord, Registry, SessionRow
from tinker_chief.spend.budget import Pricer, Tokens

if TYPE_CHECKING:
    import tinker
    from tinker.types import BillingEventInfo

    from tinker_chief.connection import Connection
    from tinker_chief.planning.planner import Estimates

MAX_WINDOW = timedelta(days=14)
TOKEN_EVENTS = ("training", "sampling_prefill", "sampling_prefill_cached", "sampling_sample")


def _hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _started(row: SessionRow) -> datetime:
    return datetime.strptime(row.started_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def _kind(info: BillingEventInfo) -> str:
    if info.type == "sampling_prefill":
        return "sampling_prefill_cached" if info.cached else "sampling_prefill"
    return str(info.type)


def _quantity(info: BillingEventInfo) -> float:
    if info.type == "storage":
        return float(info.gigabyte_hours)
    if info.type == "checkpoint":
        return float(info.count)
    return float(info.token_count)


@dataclass
class _Billed:
    """One session's sums of one kind of billing event."""

    quantity: float = 0.0
    dollars: float = 0.0
    priced: bool = True  # the backend priced every event of it


def read_billed(
    registry: Registry,
    admin: tinker.AdminClient,
    sessions: list[SessionRow],
    now: datetime | None = None,
) -> str:
    """Store what the billing API says `sessions` used; returns one line on how that went."""
    if not sessions:
        return "no recorded sessions to look up"
    wanted = {row.session_id for row in sessions}
    end = _hour(now or datetime.now(UTC)) + timedelta(hours=1)
    start = _hour(min(_started(row) for row in sessions))
    found: dict[str, dict[str, _Billed]] = {sid: {} for sid in wanted}
    try:
        while start < end:
            stop = min(end, start + MAX_WINDOW)
            for event in admin.get_billing_usage(start.isoformat(), stop.isoformat()).result().data:
                if event.session_id in wanted:
                    cell = found[event.session_id].setdefault(_kind(event.event_info), _Billed())
                    cell.quantity += _quantity(event.event_info)
                    if event.estimated_cost_usd is None:
                        cell.priced = False
                    else:
                        cell.dollars += event.estimated_cost_usd
            start = stop
    except Exception as exc:
        return f"the billing API refused ({_why(exc)}): showing chief's counted figures only"
    for sid, kinds in found.items():
        usage = {
            kind: (cell.quantity, cell.dollars if cell.priced else None)
            for kind, cell in kinds.items()
        }
        # Every token kind gets a row: a kind the session did not use reads 0, not "unread".
        registry.record_billed(sid, {k: usage.get(k, (0.0, None)) for k in TOKEN_EVENTS} | usage)
    return f"billed usage of {len(wanted)} session(s) read from the billing API"


def _why(exc: Exception) -> str:
    import tinker

    text = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
    if isinstance(exc, tinker.PermissionDeniedError):
        return f"no billing role for this key: {text}"
    return text


@dataclass
class Item:
    """One thing that was paid for: a training run or one `chief eval`, and its three numbers."""

    scope: str
    label: str
    base_model: str
    estimate: Tokens | None
    counted: Tokens
    billed: Tokens | None = None  # None: not read (yet), or the billing API refused
    billed_priced_by: str | None = None  # "backend" | "table"
    sessions: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)  # the versions it made or evaluated
    sweep: str | None = None
    at: str = ""  # when it started (UTC), for --since

    def to_dict(self) -> dict[str, object]:
        def tokens(t: Tokens | None) -> dict[str, float | None] | None:
            if t is None:
                return None
            return {
                "train": t.train,
                "prefill": t.prefill,
                "sample": t.sample,
                "total": t.total,
                "usd": t.usd,
            }

        return {
            "scope": self.scope,
            "label": self.label,
            "base_model": self.base_model,
            "estimate": tokens(self.estimate),
            "counted": tokens(self.counted),
            "billed": tokens(self.billed),
            "billed_usd_from": self.billed_priced_by,
            "sessions": self.sessions,
            "models": self.models,
            "sweep": self.sweep,
            "at": self.at,
        }


def billed_tokens(
    registry: Registry, sessions: list[str], pricer: Pricer, base_model: str
) -> tuple[Tokens, str] | None:
    """The billed tokens of `sessions` (as last read) and who priced them; None: none read."""
    rows = registry.billed(sessions)
    if not rows:
        return None
    sums: dict[str, tuple[float, float | None]] = {}
    for kinds in rows.values():
        for kind, (quantity, dollars) in kinds.items():
            q, d = sums.get(kind, (0.0, 0.0))
            sums[kind] = (q + quantity, None if d is None or dollars is None else d + dollars)
    train = int(sums.get("training", (0, None))[0])
    prefill = int(
        sum(sums.get(k, (0.0, None))[0] for k in ("sampling_prefill", "sampling_prefill_cached"))
    )
    sample = int(sums.get("sampling_sample", (0, None))[0])
    priced = [dollars for kind, (_q, dollars) in sums.items() if kind in TOKEN_EVENTS]
    if priced and all(d is not None for d in priced):  # the backend priced every token event
        return Tokens(train, prefill, sample, float(sum(d or 0.0 for d in priced))), "backend"
    return pricer.tokens(base_model, train, prefill, sample), "table"


def items(registry: Registry, pricer: Pricer, plan: Estimates | None) -> list[Item]:
    """Every training run and recorded `chief eval` of the registry, with its three numbers.
    `plan`: the planner's estimates (None: unknown)."""
    runs: dict[str, list[ModelRecord]] = {}
    for model in registry.list_models():
        if model.training_run_id:
            runs.setdefault(model.training_run_id, []).append(model)
    sessions: dict[str, list[SessionRow]] = {}
    for row in registry.sessions():
        sessions.setdefault(row.scope, []).append(row)
    found: list[Item | None] = []
    for run_id, versions in runs.items():
        last = max(versions, key=lambda m: m.training_step or 0)
        estimate = None
        if plan is not None:
            work = plan.work
            estimate = pricer.tokens(
                last.base_model, work.train_tokens, work.prefill_tokens, work.sample_tokens
            )
        label = f"training run {run_id} (to {last.ref}, step {last.training_step})"
        counted = pricer.usage(last.base_model, registry.run_usage(run_id) or last.usage)
        item = _item(
            registry, pricer, f"run:{run_id}", label, last.base_model, estimate, counted, sessions
        )
        item.sweep = _sweep_of(last.config)
        item.models = [m.ref for m in versions]
        item.at = item.at or min(m.created_at for m in versions)
        found.append(item)
    for scope in sessions:
        if scope.startswith("eval:"):
            found.append(_eval_item(registry, pricer, plan, scope, sessions))
    return [item for item in found if item is not None]


def _eval_item(
    registry: Registry,
    pricer: Pricer,
    plan: Estimates | None,
    scope: str,
    sessions: dict[str, list[SessionRow]],
) -> Item | None:
    ids = [int(i) for i in scope.removeprefix("eval:").split(",") if i.isdigit()]
    evals = registry.eval_runs_by_id(ids)
    if not evals:
        return None
    base = registry.get_model(evals[0].model_ref).base_model
    counted = Tokens()
    for run in evals:
        counted = counted + pricer.usage(base, run.usage)
    estimate = None
    if plan is not None and plan.eval_sampling is not None:
        tasks = {t.task: t for t in plan.eval_sampling.tasks}
        prefill = sum(tasks[r.task].prefill_tokens or 0 for r in evals if r.task in tasks)
        sample = sum(tasks[r.task].sample_tokens or 0 for r in evals if r.task in tasks)
        estimate = pricer.tokens(base, 0, prefill, sample)
    command = next((row.command for row in sessions.get(scope, [])), "eval")
    what = "chief eval of" if command == "eval" else f"chief {command}: the suite on"
    label = f"{what} {evals[0].model_ref} ({', '.join(r.task for r in evals)})"
    item = _item(registry, pricer, scope, label, base, estimate, counted, sessions)
    item.models = sorted({r.model_ref for r in evals})
    # The evals of a sweep's points (`chief select`'s) belong to the sweep: `chief cost --sweep`.
    sweeps = {_sweep_of(registry.get_model(ref).config) for ref in item.models}
    item.sweep = sweeps.pop() if len(sweeps) == 1 else None
    return item


def _sweep_of(config: dict[str, object]) -> str | None:
    tag = config.get("sweep")
    found = tag.get("id") if isinstance(tag, dict) else None
    return found if isinstance(found, str) else None


def _item(
    registry: Registry,
    pricer: Pricer,
    scope: str,
    label: str,
    base: str,
    estimate: Tokens | None,
    counted: Tokens,
    sessions: dict[str, list[SessionRow]],
) -> Item:
    rows = sessions.get(scope, [])
    mine = [row.session_id for row in rows]
    billed, priced_by = billed_tokens(registry, mine, pricer, base) or (None, None)
    at = min((row.started_at for row in rows), default="")
    return Item(scope, label, base, estimate, counted, billed, priced_by, sessions=mine, at=at)


class RecordedTask(Protocol):
    """A suite task as an eval command ran it (an evals `TaskOutcome`)."""

    @property
    def run_id(self) -> int | None: ...

    @property
    def reused_task(self) -> bool: ...


class RecordedSuite(Protocol):
    """What an eval command ran (an evals `SuiteRunResult`): its tasks."""

    @property
    def tasks(self) -> Sequence[RecordedTask]: ...


def note_eval_session(
    registry: Registry | None,
    connection: Connection,
    result: RecordedSuite,
    command: str = "eval",
) -> None:
    """Attribute the connection's SDK session to the eval runs this command recorded
    (`eval:<ids>`), so `chief cost` can set the bill beside chief's count. A task reused whole
    from an earlier invocation sampled nothing in this session: it stays with the earlier one."""
    ids = [str(task.run_id) for task in result.tasks if task.run_id and not task.reused_task]
    session = connection.session_id()
    if registry is not None and ids and session:
        registry.record_session(
            session, backend=connection.kind, command=command, scope="eval:" + ",".join(ids)
        )
