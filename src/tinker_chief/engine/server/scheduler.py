"""The one compute thread: per-model `seq_id` order, batched sampling, results into futures.

The backend is single-threaded by contract, so every backend call runs here. Training
requests carry the client's `seq_id` (1, 2, ...); the SDK submits chunks in parallel ("first
chunk last") and lets a client queue `forward_backward` and `optim_step` before waiting, so
requests are parked until their predecessor arrived and released strictly in order. A
request rejected before it reached the queue still consumes its `seq_id` (`skip`) so later
ones do not wait forever. Sample requests from all clients are drained together into one
`backend.sample` call, and each one's future completes as soon as its rows have finished
decoding (not when the batch's longest row has), so a client resubmits while the batch still
runs; if a batch fails on a bad request, each request not yet answered is retried alone so one
client's error does not fail the others.

Training work that can share a call (`Shareable`: several clients' `forward_backward` on one
base model, which the backend runs as one batched forward) is grouped the same way: each
model's next job is its head; heads that cannot share run first, then the first shareable head
leaves with every other head of the same key (other models only, so each model's order holds),
after waiting briefly for the models of the last group to resubmit (a sweep's clients come
back one by one as their results reach them).
"""

from __future__ import annotations

import collections
import concurrent.futures
import logging
import threading
import time
import traceback
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

from tinker_chief.engine.backend import (
    ComputeBackend,
    ForwardBackwardCall,
    SampleRequest,
    SampleResult,
)
from tinker_chief.engine.server.futures import FutureError, FutureTable, Payload
from tinker_chief.engine.server.http_errors import status_of

log = logging.getLogger("tinker_chief.engine")

_MAX_SAMPLE_BATCH = 64
_BATCH_WINDOW_S = 0.004  # lets near-simultaneous HTTP requests land in the same batch
# Requests beyond those expected back (two or more) are a burst, e.g. one client's concurrent
# `sample` calls, whose requests come up to ~20 ms apart through the SDK's httpx transport: a
# 4 ms gap split half of the 16-request bursts of bench/engine_sample.py in two batches, the
# second waiting a whole decode loop (3.4 s instead of 2.2 s).
_BURST_GAP_S = 0.03
_MAX_GATHER_S = 0.5  # the most a batch waits for the last batch's clients to resubmit
_RESUBMIT_GAP_S = 0.05  # ... and no longer than this without one of them arriving
# A seq_id that never arrives (client died mid-submit, or a request rejected somewhere we could
# not attribute to a model) must not stall the model forever: after this long, skip the gap.
SEQ_GAP_TIMEOUT_S = 60.0
# Padded tokens one shared training call may take (activations grow with it: about 0.5 MB per
# token for SmolLM2-135M in bf16, so ~4 GB here); a single request larger than this runs alone.
MAX_SHARED_TOKENS = 8192
# On a CPU, less: sharing pays while the requests are small (4 clients x 64 tokens: 1.48x the
# tokens/s of one client), but a shared call of 4 x 512 tokens ran at 0.83x and of 2 x 512 at
# parity on the 2-core dev machine (docs/BENCHMARKS.md, bench/concurrent_clients.py).
CPU_MAX_SHARED_TOKENS = 1024


@dataclass
class Shareable:
    """Work that may run in one call together with other models' work of the same `key`."""

    key: Hashable
    tokens: (
        int  # its share of the call's size, counted against MAX_SHARED_TOKENS (CPU: CPU_MAX_...)
    )
    item: ForwardBackwardCall
    # Runs the items of one shared call: each item's payload or error, in order.
    run_many: Callable[[list[ForwardBackwardCall]], list[Payload | Exception]]

    def run_alone(self) -> Payload:
        (outcome,) = self.run_many([self.item])
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


@dataclass
class _Job:
    request_id: str
    run: Callable[[], Payload]
    model_id: str | None = None
    share: Shareable | None = None


@dataclass
class _Group:
    jobs: list[_Job]


@dataclass
class _SampleJob:
    request_id: str
    request: SampleRequest
    encode: Callable[[SampleResult], Payload]
    # Runs on the compute thread just before sampling: re-resolves a sampler the backend may
    # have evicted from its cache since the request was accepted.
    refresh: Callable[[SampleRequest], SampleRequest] | None = None


@dataclass
class _ModelQueue:
    next_seq: int = 1
    parked: dict[int, _Job | None] = field(default_factory=dict)  # None = skipped seq_id
    waiting_since: float | None = None  # when the head of the sequence went missing
    seen: dict[int, str] = field(default_factory=dict)  # seq_id -> request_id (SDK retries)


class Scheduler:
    """Owns the compute thread; everything public is safe to call from any thread."""

    def __init__(self, backend: ComputeBackend, futures: FutureTable) -> None:
        self._backend = backend
        self._futures = futures
        self._cond = threading.Condition()
        self._ready: collections.deque[_Job] = collections.deque()
        self._samples: list[_SampleJob] = []
        self._models: dict[str, _ModelQueue] = {}
        self._stopping = False
        self._prefer_samples = False
        self._expected_samples = 0  # requests likely to be queued soon: see _gather_samples
        self._expected_shared: set[str] = set()  # models of the last shared group: see _take_ready
        self.stats = {
            "sample_requests": 0,
            "sample_batches": 0,
            "largest_sample_batch": 0,
            "sample_compute_s": 0.0,
            "shared_calls": 0,
            "shared_requests": 0,
            "largest_shared_call": 0,
        }
        self._thread = threading.Thread(target=self._loop, name="chief-compute", daemon=True)
        self._thread.start()

    # -- submission -------------------------------------------------------------------------

    def open_model(self, model_id: str, next_seq: int = 1) -> None:
        with self._cond:
            self._models.setdefault(model_id, _ModelQueue(next_seq=next_seq))

    def close_model(self, model_id: str, why: str) -> None:
        """Forget the model's sequence; requests parked in it (waiting for an earlier seq_id) will
        never run, so they fail now with `why` instead of leaving their clients polling forever."""
        with self._cond:
            queue = self._models.pop(model_id, None)
        parked = [job for job in queue.parked.values() if job is not None] if queue else []
        for job in parked:
            message = f"{why} before this request ran (it was waiting for an earlier seq_id)"
            self._futures.fail(job.request_id, FutureError(message, "user", 410))

    def known_request(self, model_id: str, seq_id: int | None) -> str | None:
        """The request id already issued for this (model, seq_id): an SDK retry, not new work."""
        if seq_id is None:
            return None
        with self._cond:
            queue = self._models.get(model_id)
            return queue.seen.get(seq_id) if queue else None

    def submit_ordered(
        self,
        model_id: str,
        seq_id: int | None,
        request_id: str,
        work: Callable[[], Payload] | Shareable,
    ) -> None:
        """Run `work` after every earlier `seq_id` of `model_id`; None means 'in arrival order'.
        `Shareable` work may run in one call with other models' (see the module docstring)."""
        if isinstance(work, Shareable):
            job = _Job(request_id, work.run_alone, model_id, work)
        else:
            job = _Job(request_id, work, model_id)
        with self._cond:
            queue = self._models.setdefault(model_id, _ModelQueue())
            if seq_id is None:
                self._ready.append(job)
            else:
                queue.seen[seq_id] = request_id
                self._park(queue, seq_id, job)
            self._cond.notify()

    def skip(self, model_id: str, seq_id: int | None) -> None:
        """A request with this seq_id was rejected before queuing; let its successors run."""
        if seq_id is None:
            return
        with self._cond:
            queue = self._models.get(model_id)
            if queue is not None:
                self._park(queue, seq_id, None)
                self._cond.notify()

    def submit(self, request_id: str, run: Callable[[], Payload]) -> None:
        """Run a job that belongs to no model's sequence (create_model, load_weights)."""
        with self._cond:
            self._ready.append(_Job(request_id, run))
            self._cond.notify()

    def call(self, fn: Callable[[], object]) -> concurrent.futures.Future:
        """Run `fn` on the compute thread and hand back its outcome (for synchronous routes)."""
        outcome: concurrent.futures.Future = concurrent.futures.Future()

        def run() -> dict:
            try:
                outcome.set_result(fn())
            except BaseException as exc:  # delivered to the caller, who reports it
                outcome.set_exception(exc)
            return {}

        with self._cond:
            self._ready.append(_Job("", run))
            self._cond.notify()
        return outcome

    def submit_sample(
        self,
        request_id: str,
        request: SampleRequest,
        encode: Callable[[SampleResult], Payload],
        refresh: Callable[[SampleRequest], SampleRequest] | None = None,
    ) -> None:
        with self._cond:
            self._samples.append(_SampleJob(request_id, request, encode, refresh))
            self._cond.notify()

    def stop(self, message: str = "the engine is shutting down") -> None:
        """Fail everything queued at once, let the job in progress finish, end the thread."""
        with self._cond:
            self._stopping = True
            dropped = [job.request_id for job in self._ready] + [
                job.request_id for job in self._samples
            ]
            dropped += [
                job.request_id for q in self._models.values() for job in q.parked.values() if job
            ]
            self._ready.clear()
            self._samples.clear()
            for queue in self._models.values():
                queue.parked.clear()
            self._cond.notify_all()
        for request_id in filter(None, dropped):
            self._futures.fail(request_id, FutureError(message, "server", 503))
        self._thread.join(timeout=600)
        self._futures.fail_pending(message)

    # -- compute thread ---------------------------------------------------------------------

    def _park(self, queue: _ModelQueue, seq_id: int, job: _Job | None) -> None:
        if seq_id < queue.next_seq:
            # Behind the sequence (e.g. a raw client reusing ids): run it rather than drop it.
            if job is not None:
                self._ready.append(job)
            return
        queue.parked[seq_id] = job
        self._release(queue)

    def _release(self, queue: _ModelQueue) -> None:
        while queue.next_seq in queue.parked:
            released = queue.parked.pop(queue.next_seq)
            queue.next_seq += 1
            if released is not None:
                self._ready.append(released)
        queue.waiting_since = (queue.waiting_since or time.monotonic()) if queue.parked else None

    def _skip_stale_gaps(self) -> None:
        now = time.monotonic()
        for model_id, queue in self._models.items():
            if (
                queue.parked
                and queue.waiting_since is not None
                and now - queue.waiting_since > SEQ_GAP_TIMEOUT_S
            ):
                log.warning(
                    "model %s: seq_id %d never arrived; running seq_id %d onwards",
                    model_id,
                    queue.next_seq,
                    min(queue.parked),
                )
                queue.next_seq = min(queue.parked)
                queue.waiting_since = None
                self._release(queue)

    def _next_work(self) -> _Job | _Group | list[_SampleJob] | None:
        with self._cond:
            while not self._ready and not self._samples and not self._stopping:
                self._cond.wait(timeout=SEQ_GAP_TIMEOUT_S / 4)
                self._skip_stale_gaps()
            if self._stopping:
                return None
            take_samples = bool(self._samples) and (self._prefer_samples or not self._ready)
            self._prefer_samples = not take_samples
            if not take_samples:
                return self._take_ready()
            self._gather_samples()
            batch, self._samples = (
                self._samples[:_MAX_SAMPLE_BATCH],
                self._samples[_MAX_SAMPLE_BATCH:],
            )
            return batch

    def _heads(self) -> list[_Job]:
        """Each model's next job (jobs of no model are each their own head), in queue order."""
        seen: set[str] = set()
        heads = []
        for job in self._ready:
            if job.model_id is None or job.model_id not in seen:
                heads.append(job)
                if job.model_id is not None:
                    seen.add(job.model_id)
        return heads

    def _take_ready(self) -> _Job | _Group | None:
        """A head that cannot share; else the first shareable head with every other head of its
        key (up to MAX_SHARED_TOKENS; CPU_MAX_SHARED_TOKENS on a CPU), once the models of the
        last group have resubmitted, none arrived for `_RESUBMIT_GAP_S`, or `_MAX_GATHER_S`
        passed. Holds `_cond`."""
        deadline = time.monotonic() + _MAX_GATHER_S
        while True:
            heads = self._heads()
            plain = next((job for job in heads if job.share is None), None)
            if plain is not None:
                self._ready.remove(plain)
                return plain
            missing = self._expected_shared - {job.model_id for job in heads}
            left = deadline - time.monotonic()
            if not missing or left <= 0 or self._stopping:
                break
            before = len(self._ready)
            self._cond.wait(min(_RESUBMIT_GAP_S, left))
            if len(self._ready) == before:
                break  # nobody arrived within the gap: they are done or thinking
        if not self._ready:  # `stop` emptied the queue while we waited
            return None
        first, *others = self._heads()
        group, tokens = [first], first.share.tokens if first.share else 0
        limit = (
            MAX_SHARED_TOKENS
            if self._backend.device != "cpu"
            else min(MAX_SHARED_TOKENS, CPU_MAX_SHARED_TOKENS)
        )
        for job in others:
            if (
                job.share
                and first.share
                and job.share.key == first.share.key
                and tokens + job.share.tokens <= limit
            ):
                group.append(job)
                tokens += job.share.tokens
        for job in group:
            self._ready.remove(job)
        self._expected_shared = {job.model_id for job in group if job.model_id is not None}
        return group[0] if len(group) == 1 else _Group(group)

    def _gather_samples(self) -> None:
        """Hold the batch while the clients served by the last batch are resubmitting: until
        they all have, or none arrived for `_RESUBMIT_GAP_S`, or `_MAX_GATHER_S` passed; then
        while requests keep arriving less than `_BATCH_WINDOW_S` apart, or `_BURST_GAP_S` while
        more than were expected back (and at least two) are queued (within the same deadline).

        Concurrent clients (an eval with `--concurrency 32`) resubmit one by one as a batch's
        results reach them (~5 ms each through the SDK); a batch that leaves with only the
        requests already queued pays a whole decode loop for a few rows, and batch sizes then
        alternate small/large. A sequential client is expected back with nothing else, so it
        never waits.
        """
        deadline = time.monotonic() + _MAX_GATHER_S
        expected = min(self._expected_samples, _MAX_SAMPLE_BATCH)
        self._wait_while_arriving(expected, _RESUBMIT_GAP_S, deadline)
        # A burst (many clients submitting at once through the SDK) arrives a few ms apart; the
        # window slides with it, or the first batch would leave with the first two requests and
        # the rest wait a whole decode loop.
        self._wait_while_arriving(
            _MAX_SAMPLE_BATCH, _BATCH_WINDOW_S, deadline, burst_after=max(expected, 1)
        )

    def _wait_while_arriving(
        self, target: int, gap: float, deadline: float, burst_after: int | None = None
    ) -> None:
        """Wait (holding `_cond`) until `target` samples are queued, none arrived for `gap`
        seconds (`_BURST_GAP_S` while more than `burst_after` are queued), or `deadline` passed;
        each arrival wakes the wait."""
        while len(self._samples) < target and (left := deadline - time.monotonic()) > 0:
            before = len(self._samples)
            in_burst = burst_after is not None and before > burst_after
            self._cond.wait(min(_BURST_GAP_S if in_burst else gap, left))
            if len(self._samples) == before:
                break  # nobody arrived within the gap: they are done or thinking

    def _loop(self) -> None:
        while (work := self._next_work()) is not None:
            if isinstance(work, _Job):
                self._run_job(work)
            elif isinstance(work, _Group):
                self._run_group(work.jobs)
            else:
                self._run_samples(work)

    def _run_job(self, job: _Job) -> None:
        try:
            payload = job.run()
        except Exception as exc:
            self._fail(job.request_id, exc)
            return
        if job.request_id:
            self._futures.complete(job.request_id, payload)

    def _run_group(self, jobs: list[_Job]) -> None:
        shares = [job.share for job in jobs if job.share is not None]
        self.stats["shared_calls"] += 1
        self.stats["shared_requests"] += len(jobs)
        self.stats["largest_shared_call"] = max(self.stats["largest_shared_call"], len(jobs))
        try:
            outcomes = shares[0].run_many([share.item for share in shares])
        except Exception as exc:
            outcomes = [exc] * len(jobs)
        for job, outcome in zip(jobs, outcomes, strict=True):
            if isinstance(outcome, Exception):
                self._fail(job.request_id, outcome)
            elif job.request_id:
                self._futures.complete(job.request_id, outcome)

    def _run_samples(self, batch: list[_SampleJob]) -> None:
        """One `backend.sample` call for `batch`; each future is completed as soon as the
        backend hands its result over (or when the call returns). A failed call is retried
        request by request, except for the requests already answered."""
        batch = [job for job in batch if self._refreshed(job)]
        if not batch:
            return
        self.stats["sample_batches"] += 1
        self.stats["sample_requests"] += len(batch)
        self.stats["largest_sample_batch"] = max(self.stats["largest_sample_batch"], len(batch))
        with self._cond:
            queued_before = len(self._samples)
        answered: set[int] = set()

        def answer(index: int, result: SampleResult) -> None:
            answered.add(index)
            self._answer(batch[index], result)

        started = time.perf_counter()
        try:
            results = self._backend.sample([job.request for job in batch], answer)
        except Exception as exc:
            if len(batch) == 1:
                self._fail(batch[0].request_id, exc)
                return
            for index, job in enumerate(batch):  # isolate the request that broke the batch
                if index not in answered:
                    self._run_samples([job])
            return
        self.stats["sample_compute_s"] += time.perf_counter() - started
        with self._cond:
            # Who the next batch should wait for: the clients just served (those answered
            # early may be queued already: each arrival during the call counts as one of them,
            # up to how many were answered early) and everything queued meanwhile.
            arrived = len(self._samples) - queued_before
            back_already = min(max(arrived, 0), len(answered))
            self._expected_samples = len(batch) - back_already + len(self._samples)
        for index, (job, result) in enumerate(zip(batch, results, strict=True)):
            if index not in answered:  # a backend may also hand results over only at the end
                self._answer(job, result)

    def _answer(self, job: _SampleJob, result: SampleResult) -> None:
        try:
            self._futures.complete(job.request_id, job.encode(result))
        except Exception as exc:
            self._fail(job.request_id, exc)

    def _refreshed(self, job: _SampleJob) -> bool:
        if job.refresh is None:
            return True
        try:
            # Kept for a retry: if a batch naming more checkpoints than the backend caches fails,
            # each job re-resolves its own (possibly evicted again) sampler when run alone.
            job.request = job.refresh(job.request)
        except Exception as exc:
            self._fail(job.request_id, exc)
            return False
        return True

    def _fail(self, request_id: str, exc: Exception) -> None:
        status = status_of(exc)
        if status >= 500:
            log.error(
                "request %s failed:\n%s", request_id, "".join(traceback.format_exception(exc))
            )
            error = FutureError(
                f"internal engine error: {type(exc).__name__}: {exc}", "server", status
            )
        else:
            error = FutureError(str(exc), "user", status)
        if request_id:
            self._futures.fail(request_id, error)
