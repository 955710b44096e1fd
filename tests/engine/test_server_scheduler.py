"""The compute-thread scheduler in-process: seq_id order, gap timeout, shutdown of queued work.

Jobs here are plain callables recording their order; the backend is the real `TorchBackend`
(only sampling would touch it). Futures are read back through the real `FutureTable`.
"""

from __future__ import annotations

import asyncio
import threading
import time

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


class _BatchRecorder:
    """A stand-in compute backend for sampling that records each batch's size (the real
    backend's sampling is tested in test_compute_sampling; here only batching is at stake)."""

    def __init__(self) -> None:
        self.sizes: list[int] = []

    def sample(self, requests):
        self.sizes.append(len(requests))
        return [{"n": len(requests)} for _ in requests]


def test_clients_resubmitting_one_by_one_after_a_batch_form_one_full_batch(monkeypatch):
    """After a batch of 4 finishes, its 4 clients come back one at a time; the scheduler waits
    for them (they arrive well within the resubmit gap) instead of running the first alone."""
    monkeypatch.setattr(scheduler_module, "_RESUBMIT_GAP_S", 2.0)  # generous: a loaded CI machine
    monkeypatch.setattr(scheduler_module, "_MAX_GATHER_S", 20.0)
    backend, futures = _BatchRecorder(), FutureTable()
    scheduler = scheduler_module.Scheduler(backend, futures)
    try:
        def submit(count: int, pause: float = 0.0) -> list[str]:
            ids = []
            for _ in range(count):
                ids.append(futures.create("sample"))
                scheduler.submit_sample(ids[-1], object(), lambda result: result)
                time.sleep(pause)
            return ids

        busy = threading.Event()
        scheduler.submit("", lambda: busy.wait(30) and {})  # holds the compute thread while 4 queue up
        first = submit(4)
        busy.set()
        assert all(_result(futures, request_id) for request_id in first)
        assert backend.sizes == [4]
        # Spaced beyond the 4 ms batch window: without waiting for them, the first would run alone.
        second = submit(4, pause=0.05)
        assert all(_result(futures, request_id) for request_id in second)
        assert sum(backend.sizes) == 8 and backend.sizes[-1] == 4
    finally:
        scheduler.stop()


def test_a_failed_batch_retries_each_job_with_its_sampler_resolved_again(parts):
    """A checkpoint sampler can be evicted between being resolved and being sampled (a batch
    naming more checkpoints than the backend caches); the batch fails, and each job retried alone
    resolves its sampler again instead of reusing the stale key."""
    from dataclasses import replace

    from tinker_chief.engine.backend import SampleRequest, SamplingSettings
    from tinker_chief.models import TINY_MODEL

    scheduler, futures = parts
    resolutions = []

    def refresh(request: SampleRequest) -> SampleRequest:  # stale on the first call, as after an eviction
        resolutions.append(request.sampler)
        return replace(request, sampler="evicted-sampler" if len(resolutions) == 1 else TINY_MODEL)

    settings = SamplingSettings(max_tokens=2, temperature=0.0)
    ids = [futures.create("t"), futures.create("t")]
    batch = [scheduler_module._SampleJob(ids[0], SampleRequest("placeholder", (1, 2, 3), 1, settings),
                                         lambda result: {"tokens": result.sequences[0].tokens}, refresh),
             scheduler_module._SampleJob(ids[1], SampleRequest(TINY_MODEL, (1, 2), 1, settings),
                                         lambda result: {"tokens": result.sequences[0].tokens})]
    scheduler._run_samples(batch)
    assert len(resolutions) == 2  # once for the batch, once more for the retry alone
    assert len(_result(futures, ids[0])["tokens"]) == 2
    assert len(_result(futures, ids[1])["tokens"]) == 2
