"""Defaults every way of running an eval shares (`chief eval`, `chief eval-offline`, the suite
runner, cookbook evaluators, the Inspect provider); a leaf, so the CLI reads them without
loading the rest of evals."""

# Requests an eval keeps in flight unless told otherwise (`--concurrency`). As many as the local
# engine decodes in one batch (`MAX_BATCH_ROWS`): on a 2-core Xeon with AMX (2026-12-08), 200
# short answers through `chief eval-offline` took 32.1 s at 16, 21.1-22.2 s at 32 and 14.0-14.8 s
# at 64, since a decode step reads every weight whatever the rows. Tinker's cloud takes them as
# well (the cookbook's evaluators send all their requests at once); the engine holds what
# exceeds its KV-cache budget until there is room.
DEFAULT_CONCURRENCY = 64
