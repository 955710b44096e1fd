"""Money and checkpoints: what the work costs, what it may cost, and how long weights are kept.

- `lifecycle`: TTLs that follow registry status (promotion keeps weights, retiring lets them
  expire) and `chief registry gc`, through the SDK's checkpoint REST calls.
- `budget`: `[budget] max_usd` / `max_tokens`: spent to date, commands refused up front, the
  guard that stops a training run or a sweep's runs at a checkpoint and the one that stops
  `chief eval` / `chief select` between suite tasks (exit code 6).
- `billing`: the backend's billing API read for the SDK sessions chief recorded, attributed to
  training runs and evals, and reconciled with the plan's estimate and chief's count (`chief cost`).

Imports `registry` (where spend, sessions and weights are recorded), `connection` (the SDK
clients of the backend a command used) and `planning` (the dated price table).

    from tinker_chief.spend import pricer_of, training_guard
    guard = training_guard(project, max_usd="5", resume=False)   # None without a [budget]
    pricer_of(project).tokens("Qwen/Qwen3-8B", train=10**6, prefill=0, sample=0).usd
"""

from tinker_chief.spend.billing import Item, items, note_eval_session, read_billed
from tinker_chief.spend.budget import (
    Budget,
    BudgetExceeded,
    BudgetGuard,
    EvalGuard,
    Pricer,
    RunBudget,
    Tokens,
    eval_guard,
    plan_estimates,
    pricer_of,
    run_stopped,
    sweep_guard,
    sweep_stopped,
    training_estimate,
    training_guard,
)
from tinker_chief.spend.lifecycle import GcReport, after_status_change, collect

__all__ = [
    "Budget",
    "BudgetExceeded",
    "BudgetGuard",
    "EvalGuard",
    "GcReport",
    "Item",
    "Pricer",
    "RunBudget",
    "Tokens",
    "after_status_change",
    "collect",
    "eval_guard",
    "items",
    "note_eval_session",
    "plan_estimates",
    "pricer_of",
    "read_billed",
    "run_stopped",
    "sweep_guard",
    "sweep_stopped",
    "training_estimate",
    "training_guard",
]
