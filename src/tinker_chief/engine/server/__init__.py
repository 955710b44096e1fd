"""The protocol layer of the local engine: what the unmodified `tinker` SDK talks to over HTTP.

`app.py` maps the SDK's routes onto `service.EngineService`, which owns sessions, models and
sampling sessions, hands work to `scheduler.Scheduler` (one compute thread, per-model `seq_id`
order, batched sampling) and parks results in `futures.FutureTable` for long-polling.
`codec.py` converts protobuf/JSON to the backend dataclasses of `engine/backend.py`;
`store.py` keeps runs and checkpoints under `--state-dir`, and `expiry.py` deletes the ones
whose TTL ran out; `billing.py` counts usage and answers the billing API;
`sdk_usage.py` checks and counts the calling SDKs; `limits.py` caps request
bodies, zstd inflation and read times. Other capabilities import only
`launcher.py` (start/stop an engine process); everything else reaches the engine over HTTP.
"""
