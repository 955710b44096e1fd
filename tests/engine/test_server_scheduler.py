"""The compute-thread scheduler in-process: seq_id order, gap timeout, shutdown of queued work.

Jobs here are plain callables recording their order; the backend is the real `TorchBackend`
(only sampling would touch it). Futures are read back through the real `FutureTable`.
"""

from __future__ import annotations

import asyncio
import threading

import pytest

from tinker_chief.engine.server import scheduler as scheduler_module
from tinker_chief.engine.server.futures import FutureError, FutureTable


@pytest.fixture
def parts():
    from tinker_chief.engine.compute import TorchBackend

    futures = FutureTable()
    scheduler = scheduler_module.Scheduler(TorchBackend(device="cpu", dtype="float32"), futures)
    yield scheduler, futures
    scheduler.stop()


def _result(futures: FutureTable, request_id: str, timeout: float = 30):
    return asyncio.run(futures.wait(request_id, timeout))


def _recording(order: list[int], seq: int):
    return lambda: order.append(seq) or {"seq": seq}


def test_out_of_order_submissions_run_in_seq_order(parts):
    scheduler, futures = parts
    scheduler.open_model("m")
    order: list[int] = []
    ids = {seq: futures.create("t") for seq in (1, 2, 3, 4)}
    for seq in (3, 4, 2):
        scheduler.submit_ordered("m", seq, ids[seq], _recording(order, seq))
    assert _result(futures, ids[3], timeout=0.3) is None  # parked: seq 1 has not arrived
    scheduler.submit_ordered("m", 1, ids[1], _recording(order, 1))
    assert [_result(futures, ids[s])["seq"] for s in (1, 2, 3, 4)] == [1, 2, 3, 4]
    assert order == [1, 2, 3, 4]
    assert scheduler.known_request("m", 3) == ids[3]


def test_a_seq_id_that_never_arrives_is_skipped_after_the_gap_timeout(parts, monkeypatch):
    monkeypatch.setattr(scheduler_module, "SEQ_GAP_TIMEOUT_S", 0.4)
    scheduler, futures = parts
    scheduler.open_model("m")
    request_id = futures.create("t")
    scheduler.submit_ordered("m", 2, request_id, lambda: {"ran": True})
    assert _result(futures, request_id, timeout=10) == {"ran": True}


def test_stop_fails_queued_work_and_finishes_the_running_job(parts):
    scheduler, futures = parts
    started, release = threading.Event(), threading.Event()
    running, queued = futures.create("t"), futures.create("t")
    scheduler.submit(running, lambda: (started.set(), release.wait(10)) and {"finished": True})
    scheduler.submit(queued, lambda: {"never": True})
    assert started.wait(10)
    stopper = threading.Thread(target=scheduler.stop)
    stopper.start()
    failed = _result(futures, queued)
    assert isinstance(failed, FutureError) and "shutting down" in failed.message
    release.set()
    stopper.join(30)
    assert _result(futures, running) == {"finished": True}
