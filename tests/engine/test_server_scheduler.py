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
from tinker_chief.engine.server.http_errors import InvalidRequestError


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

    def sample(self, requests, on_result=None):
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
        scheduler.submit(
            "", lambda: busy.wait(30) and {}
        )  # holds the compute thread while 4 queue up
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


def test_a_burst_after_a_lone_request_waits_for_its_stragglers(monkeypatch):
    """One client's concurrent `sample` calls come a few ms apart, some further: once two are
    queued beyond those expected back, the batch waits for the rest instead of leaving."""
    monkeypatch.setattr(scheduler_module, "_BURST_GAP_S", 2.0)  # generous: a loaded CI machine
    monkeypatch.setattr(scheduler_module, "_MAX_GATHER_S", 20.0)
    backend, futures = _BatchRecorder(), FutureTable()
    scheduler = scheduler_module.Scheduler(backend, futures)

    def submit() -> str:
        request_id = futures.create("sample")
        scheduler.submit_sample(request_id, object(), lambda result: result)
        return request_id

    try:
        assert _result(futures, submit())  # a lone request: one client expected back
        busy = threading.Event()
        scheduler.submit("", lambda: busy.wait(30) and {})  # the burst's first two queue together
        burst = [submit(), submit()]
        busy.set()
        for _ in range(4):
            time.sleep(0.05)  # beyond the 4 ms window that a lone request waits
            burst.append(submit())
        assert all(_result(futures, request_id) for request_id in burst)
        assert backend.sizes == [1, 6]
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

    def refresh(
        request: SampleRequest,
    ) -> SampleRequest:  # stale on the first call, as after an eviction
        resolutions.append(request.sampler)
        return replace(request, sampler="evicted-sampler" if len(resolutions) == 1 else TINY_MODEL)

    settings = SamplingSettings(max_tokens=2, temperature=0.0)
    ids = [futures.create("t"), futures.create("t")]
    batch = [
        scheduler_module._SampleJob(
            ids[0],
            SampleRequest("placeholder", (1, 2, 3), 1, settings),
            lambda result: {"tokens": result.sequences[0].tokens},
            refresh,
        ),
        scheduler_module._SampleJob(
            ids[1],
            SampleRequest(TINY_MODEL, (1, 2), 1, settings),
            lambda result: {"tokens": result.sequences[0].tokens},
        ),
    ]
    scheduler._run_samples(batch)
    assert len(resolutions) == 2  # once for the batch, once more for the retry alone
    assert len(_result(futures, ids[0])["tokens"]) == 2
    assert len(_result(futures, ids[1])["tokens"]) == 2


def _shared(order: list, item: str, key: str = "base", tokens: int = 1, fail: str = ""):
    """Shareable work recording each call's items (the real shared forward is tested in
    test_compute_shared_forward; here only grouping and order are at stake)."""

    def run_many(items: list[str]) -> list:
        order.append(tuple(items))
        return [InvalidRequestError(f"{i} is bad") if i == fail else {"item": i} for i in items]

    return scheduler_module.Shareable(key, tokens, item, run_many)


def _hold(scheduler) -> threading.Event:
    """Keep the compute thread busy until the returned event is set."""
    started, release = threading.Event(), threading.Event()

    def busy() -> dict:
        started.set()
        release.wait(30)
        return {}

    scheduler.submit("", busy)
    assert started.wait(10)
    return release


def test_shareable_heads_of_different_models_leave_as_one_call_after_the_plain_ones(parts):
    scheduler, futures = parts
    order: list = []
    release = _hold(scheduler)
    queued = [
        ("a", 1, _shared(order, "a1")),
        ("a", 2, _recording(order, "a-optim")),
        ("a", 3, _shared(order, "a3")),
        ("b", 1, _shared(order, "b1")),
        ("c", 1, _recording(order, "c-save")),
        ("c", 2, _shared(order, "c2")),
        ("d", 1, _shared(order, "d1", key="another base")),
    ]
    ids = {}
    for model, seq, work in queued:
        ids[model, seq] = futures.create("t")
        scheduler.submit_ordered(model, seq, ids[model, seq], work)
    release.set()
    assert _result(futures, ids["d", 1]) == {"item": "d1"}
    # c's plain head first; then every model's shareable head of one key in one call (a's
    # second one waits behind its optim step); then the rest, alone.
    assert order == ["c-save", ("a1", "b1", "c2"), "a-optim", ("a3",), ("d1",)]
    assert _result(futures, ids["b", 1]) == {"item": "b1"} and _result(futures, ids["a", 3]) == {
        "item": "a3"
    }
    assert scheduler.stats["shared_calls"] == 1 and scheduler.stats["largest_shared_call"] == 3


def test_a_shared_call_stays_within_its_token_budget_and_one_items_error_fails_only_it(
    parts, monkeypatch
):
    monkeypatch.setattr(scheduler_module, "MAX_SHARED_TOKENS", 5)
    scheduler, futures = parts
    order: list = []
    release = _hold(scheduler)
    ids = {}
    for model in ("a", "b", "c"):
        ids[model] = futures.create("t")
        scheduler.submit_ordered(model, 1, ids[model], _shared(order, model, tokens=2, fail="b"))
    release.set()
    assert _result(futures, ids["c"]) == {"item": "c"}
    assert order == [("a", "b"), ("c",)]
    failed = _result(futures, ids["b"])
    assert isinstance(failed, FutureError) and failed.message == "b is bad" and failed.status == 400
    assert _result(futures, ids["a"]) == {"item": "a"}


def test_models_of_a_shared_call_resubmitting_one_by_one_share_the_next_call_too(
    parts, monkeypatch
):
    """A sweep's clients get their results back together and resubmit one by one; the first
    back waits for the others instead of running alone (and splitting the sweep in two)."""
    monkeypatch.setattr(scheduler_module, "_RESUBMIT_GAP_S", 2.0)  # generous: a loaded CI machine
    monkeypatch.setattr(scheduler_module, "_MAX_GATHER_S", 20.0)
    scheduler, futures = parts
    order: list = []
    release = _hold(scheduler)
    for seq in (1, 2):
        ids = {model: futures.create("t") for model in ("a", "b", "c")}
        for model in ids:
            scheduler.submit_ordered(model, seq, ids[model], _shared(order, f"{model}{seq}"))
            time.sleep(0.1 if seq == 2 else 0)  # the second round trickles in
        release.set()
        assert all(_result(futures, request_id) for request_id in ids.values())
    assert order == [("a1", "b1", "c1"), ("a2", "b2", "c2")]


class _EarlyAnswers:
    """A stand-in compute backend whose batches answer request 0 as soon as it is decoded (its
    `on_result`, as the real sampler does when a request's rows finish) and then go on with the
    others: held until the test releases them, or failing, as the test sets."""

    def __init__(self, fail_first: bool = False) -> None:
        self.calls: list[list[str]] = []
        self.answered_first, self.release = threading.Event(), threading.Event()
        self.fail_first = fail_first

    def sample(self, requests, on_result=None):
        self.calls.append(list(requests))
        if len(requests) > 1:
            on_result(0, f"early {requests[0]}")
            self.answered_first.set()
            if self.fail_first:
                raise RuntimeError("a request of this batch broke it")
            assert self.release.wait(30)
        return [f"late {request}" for request in requests]


def _submit_together(scheduler, futures, requests: list[str]) -> list[str]:
    """`requests` queued while the compute thread is busy, so they leave in one batch."""
    busy = threading.Event()
    scheduler.submit("", lambda: busy.wait(30) and {})
    ids = []
    for request in requests:
        ids.append(futures.create("sample"))
        scheduler.submit_sample(ids[-1], request, lambda result: {"result": result})
    busy.set()
    return ids


def test_a_finished_request_is_answered_while_its_batch_still_decodes():
    backend, futures = _EarlyAnswers(), FutureTable()
    scheduler = scheduler_module.Scheduler(backend, futures)
    try:
        short, long = _submit_together(scheduler, futures, ["short", "long"])
        assert backend.answered_first.wait(30)
        assert _result(futures, short) == {"result": "early short"}
        assert _result(futures, long, timeout=0.05) is None  # its batch is still running
        backend.release.set()
        assert _result(futures, long) == {"result": "late long"}
        assert backend.calls == [["short", "long"]]
    finally:
        backend.release.set()
        scheduler.stop()


def test_a_failed_batch_retries_only_the_requests_it_had_not_answered():
    backend, futures = _EarlyAnswers(fail_first=True), FutureTable()
    scheduler = scheduler_module.Scheduler(backend, futures)
    try:
        ids = _submit_together(scheduler, futures, ["a", "b", "c"])
        assert [_result(futures, i) for i in ids] == [
            {"result": "early a"},
            {"result": "late b"},
            {"result": "late c"},
        ]
        assert backend.calls == [["a", "b", "c"], ["b"], ["c"]]
    finally:
        scheduler.stop()
