"""Checkpoint TTLs on a running engine: the deletion pass, at start and every interval.

A checkpoint saved with `ttl_seconds` (or given one through the REST TTL route) expires at its
`expires_at`. From that instant requests naming it fail with a 404 saying when it expired (the
store checks on every read), and the next pass deletes its files unless it is in use:

- leased by a request in flight: a `load_weights` or a sampler load that resolved the
  checkpoint before it expired holds it until its work has read the files;
- loaded by a sampling session that still exists: its adapter may be evicted from the
  engine's memory and reloaded from the checkpoint's directory on the next sample.

A deleted checkpoint leaves a tombstone, so later requests still hear when it expired.
A pass renames a checkpoint away (`.<name>.expired-*`) before deleting its files; if the engine
is killed in between, the next engine's `start` removes the leftover before it serves.
The pass runs once before the engine serves its first request and then every
`SWEEP_INTERVAL_S` seconds (TTLs are at least an hour, so files outlive their expiry by about
a minute, or until their last user lets go); `CHIEF_ENGINE_EXPIRY_SWEEP_S` overrides the
interval (tests use a fraction of a second).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from tinker_chief.settings import positive_seconds

if TYPE_CHECKING:
    from tinker_chief.engine.server.service import EngineService

log = logging.getLogger("tinker_chief.engine")

SWEEP_INTERVAL_S = 60.0
SWEEP_INTERVAL_ENV = "CHIEF_ENGINE_EXPIRY_SWEEP_S"


def sweep_interval() -> float:
    """`SWEEP_INTERVAL_S`, or the positive number of seconds in `CHIEF_ENGINE_EXPIRY_SWEEP_S`."""
    return positive_seconds(SWEEP_INTERVAL_ENV, SWEEP_INTERVAL_S)


def sweep(engine: EngineService) -> int:
    """One deletion pass (blocking); returns how many checkpoints it deleted."""
    deleted = engine.store.delete_expired(engine.checkpoints_in_use)
    for record in deleted:
        log.info(
            "deleted expired checkpoint %s (expired at %s)", record.tinker_path, record.expires_at
        )
    return len(deleted)


async def start(engine: EngineService) -> None:
    """Before the engine serves: finish the deletions (and saves) a killed engine left half done,
    then one pass for the checkpoints that expired while it was down."""
    try:
        for path in await asyncio.to_thread(engine.store.remove_leftovers):
            log.info("removed %s, left by an engine that stopped mid-way", path)
    except Exception:
        log.exception("removing a stopped engine's leftovers failed; they stay till the next start")
    await sweep_now(engine)


async def sweep_now(engine: EngineService) -> None:
    """One pass off the event loop; a failure is logged, never fatal (the next pass retries)."""
    try:
        await asyncio.to_thread(sweep, engine)
    except Exception:
        log.exception("the checkpoint expiry pass failed; retrying at the next one")


async def sweep_every(engine: EngineService, interval: float) -> None:
    """Forever (until cancelled): wait `interval` seconds, then run a pass."""
    while True:
        await asyncio.sleep(interval)
        await sweep_now(engine)
