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
"""
