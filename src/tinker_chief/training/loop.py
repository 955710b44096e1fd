"""The training loop: deterministic batches, LR schedule, inline evals, checkpoints, resume.

We run our own loop instead of the cookbook's `supervised.train.main` because (1) resume must
run every batch exactly once (the cookbook's SL resume replays the checkpointed batch,
cookbook issue #935), which needs a batch order that is a pure function of (seed, step);
(2) each checkpoint is registered in the registry with lineage as it is saved; (3) Ctrl-C
must save a checkpoint between steps and exit cleanly; (4) progress goes to our observer
(the CLI's rich bar). The pieces inside a step are the cookbook's (datums, losses, LR
schedule, evaluators); see `training.steps` and `training.rl`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Literal, Protocol, TypeAlias, runtime_checkable

import numpy as np
import tinker

from tinker_chief.evals.usage import TokenUsage, metered
from tinker_chief.planning.calibration import machine_id
from tinker_chief.training.inline_evals import EvaluatorBuilder, run_evaluators
from tinker_chief.training.runlog import CheckpointRecord, RunLog
from tinker_chief.training.spec import TrainSpec
from tinker_chief.training.steps import StepRunner

if TYPE_CHECKING:
    from tinker_chief.connection import Connection
    from tinker_chief.training.data import Prepared


class Observer(Protocol):
    """Progress callbacks; the CLI renders them, tests may record them."""

    def on_start(self, run_id: str, start_step: int, total_steps: int) -> None: ...
    def on_step(self, step: int, metrics: dict[str, float]) -> None: ...
    def on_eval(self, step: int, metrics: dict[str, float]) -> None: ...
    def on_checkpoint(self, record: CheckpointRecord) -> None: ...
    def on_end(self, result: TrainResult) -> None: ...


class SpendGuard(Protocol):
    """Asked after each step (a budget, `spend.budget.BudgetGuard`): why to stop before spending
    more, given the run's usage so far and what it would use before it asks again: the next step
    (as big as the last) and an inline eval due now (as big as the largest so far), both in
    metrics.jsonl's `*/tokens` keys."""

    def check(self, run_usage: dict[str, float], upcoming: dict[str, float]) -> str | None: ...


class CheckpointSink(Protocol):
    """Where checkpoints are registered (the registry); returns the registry's ref."""

    def register(self, record: CheckpointRecord, final: bool) -> str | None: ...


# Builds the run's checkpoint sink once its log, data and connection are known.
SinkFactory: TypeAlias = "Callable[[RunLog, Prepared, Connection], CheckpointSink]"


@runtime_checkable
class RunRecorder(Protocol):
    """A sink that also records the run's whole count and SDK sessions at its end (the
    registry's)."""

    def record_run(self, session_ids: list[str], backend: str) -> None: ...


@dataclass(frozen=True)
class TrainResult:
    run_id: str
    run_dir: Path
    status: Literal["finished", "interrupted", "stopped", "budget"]
    steps_done: int
    total_steps: int
    final: CheckpointRecord | None  # the run's candidate (last checkpoint saved)
    # Why the recipe stopped the run ("stopped"), and what it warned about while going on.
    reason: str | None = None
    warnings: tuple[str, ...] = ()


def total_steps(spec: TrainSpec, n_items: int) -> int:
    steps = math.ceil(n_items / spec.batch_size) * (spec.schedule.epochs or 1)
    return min(steps, spec.schedule.steps) if spec.schedule.steps else steps


def batch_indices(n_items: int, batch_size: int, seed: int, step: int) -> list[int]:
    """Batch `step` (0-based) of a per-epoch seeded permutation: a pure function of its inputs."""
    per_epoch = math.ceil(n_items / batch_size)
    epoch, index = divmod(step, per_epoch)
    order = np.random.default_rng([seed, epoch]).permutation(n_items)
    return [int(i) for i in order[index * batch_size : (index + 1) * batch_size]]


class StopRequest:
    """First Ctrl-C (or SIGTERM) asks the loop to checkpoint and stop after the current step; a
    second aborts. SIGTERM is included so a job scheduler's stop also leaves a resumable run and
    lets `with` blocks stop the local engine this process started. A sweep installs one in the main
    thread and hands it to each of its runs' threads (`Trainer(stop=...)`), so one Ctrl-C stops
    all."""

    def __init__(self) -> None:
        self.requested = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    @contextmanager
    def installed(self) -> Iterator[StopRequest]:
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {
            sig: signal.signal(sig, self._handle) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


class Trainer:
    """Runs one `TrainSpec` with a `StepRunner` against an SDK `ServiceClient`."""

    def __init__(
        self,
        spec: TrainSpec,
        service: tinker.ServiceClient,
        runner: StepRunner,
        log: RunLog,
        evaluators: Sequence[EvaluatorBuilder] = (),
        infrequent: Sequence[EvaluatorBuilder] = (),
        sink: CheckpointSink | None = None,
        observer: Observer | None = None,
        usage: TokenUsage | None = None,
        *,
        stop: StopRequest | None = None,
        guard: SpendGuard | None = None,
    ) -> None:
        self.spec, self.service, self.runner, self.log = spec, service, runner, log
        self.stop = stop  # shared by a sweep's runs; else each run installs its own
        self.guard = guard
        self.usage = usage or TokenUsage()  # the recipe's samplers count into the same meter
        self.evaluators, self.infrequent = list(evaluators), list(infrequent)
        self.sink, self.observer = sink, observer
        self.total = total_steps(spec, len(runner))
        # The largest inline eval's tokens so far: what the next one may use (a budget asks).
        evals = (_tokens(row) for row in log.metrics() if "time/eval_s" in row)
        self.largest_eval = max(evals, key=_sum, default={})

    def _client(self, resume: CheckpointRecord | None) -> tinker.TrainingClient:
        if resume is not None:
            return self.service.create_training_client_from_state_with_optimizer(
                resume.state_path
            ).result()
        s = self.spec
        return self.service.create_lora_training_client(
            base_model=s.base_model,
            rank=s.lora.rank,
            seed=s.seed,
            train_mlp=s.lora.train_mlp,
            train_attn=s.lora.train_attn,
            train_unembed=s.lora.train_unembed,
        ).result()

    def _adam(self, step: int) -> tinker.AdamParams:
        from tinker_cookbook.utils.lr_scheduling import compute_schedule_lr_multiplier

        s = self.spec
        warm = min(s.schedule.warmup_steps, self.total - 1)
        # Linear warmup (the cookbook's schedules have none), then its decay over the remaining
        # steps.
        factor = (
            (step + 1) / warm
            if step < warm
            else compute_schedule_lr_multiplier(
                s.schedule.lr_schedule, step - warm, self.total - warm
            )
        )
        lr, o = s.optimizer.learning_rate * factor, s.optimizer
        return tinker.AdamParams(
            learning_rate=lr,
            beta1=o.beta1,
            beta2=o.beta2,
            eps=o.eps,
            weight_decay=o.weight_decay,
            grad_clip_norm=o.grad_clip_norm,
        )

    def _due(self, every: int, done: int) -> bool:
        return every > 0 and (done % every == 0 or done == self.total)

    def _evaluators_due(self, done: int, initial: bool = False) -> list[EvaluatorBuilder]:
        builders = (
            list(self.evaluators)
            if initial or self._due(self.spec.inline_evals.nll_every_steps, done)
            else []
        )
        if self.infrequent and (
            initial or self._due(self.spec.inline_evals.sampled_every_steps, done)
        ):
            builders += self.infrequent
        return builders

    def _upcoming(self, step_metrics: dict[str, float], done: int) -> dict[str, float]:
        """What the run uses before the guard asks again: the next step, as big as the one just
        done, and each inline eval due before then (at `done`, and after the last step, which
        no check follows), as big as the largest so far."""
        at = [done, self.total] if done + 1 == self.total else [done]
        evals = sum(1 for step in at if self._evaluators_due(step))
        step = _tokens(step_metrics)
        return {key: step[key] + evals * self.largest_eval.get(key, 0.0) for key in TOKEN_KEYS}

    def _evaluate(self, client: tinker.TrainingClient, done: int, initial: bool = False) -> None:
        builders = self._evaluators_due(done, initial)
        if not builders:
            return
        before, started = self.usage.counts(), time.perf_counter()
        metrics = run_evaluators(
            builders, metered(client.save_weights_and_get_sampling_client().result(), self.usage)
        )
        metrics.update({**self.usage.since(before), "time/eval_s": time.perf_counter() - started})
        self.largest_eval = max(self.largest_eval, _tokens(metrics), key=_sum)
        self.log.log_metrics(done, metrics)
        if self.observer:
            self.observer.on_eval(done, metrics)

    def _checkpoint(
        self, client: tinker.TrainingClient, done: int, final: bool
    ) -> CheckpointRecord:
        name = f"step-{done:06d}"
        # New checkpoints expire unless the registry keeps them (promotion clears the TTL).
        ttl = self.spec.checkpoints.ttl_days * 86400 or None
        state = client.save_state(name, ttl_seconds=ttl)
        sampler = client.save_weights_for_sampler(name, ttl_seconds=ttl)
        state_path, sampler_path = state.result().path, sampler.result().path
        record = CheckpointRecord(
            name=name,
            step=done,
            state_path=state_path,
            sampler_path=sampler_path,
            training_run_id=_run_id_of(state_path),
            final=final,
        )
        if self.sink is not None:
            record = dataclasses.replace(record, registry_ref=self.sink.register(record, final))
        self.log.add_checkpoint(record)
        if self.observer:
            self.observer.on_checkpoint(record)
        return record

    def run(self, resume: CheckpointRecord | None = None) -> TrainResult:
        start = resume.step if resume else 0
        if resume is not None:
            self.log.truncate_metrics_after(start)
        client = self._client(resume)
        if self.observer:
            self.observer.on_start(self.log.run_id, start, self.total)
        # The machine a run's step times were measured on: `chief plan` calibrates from runs made
        # here.
        self.log.write_status(
            "running", total_steps=self.total, machine=machine_id(), pid=os.getpid()
        )
        if resume is None:
            self._evaluate(client, 0, initial=True)
        last = resume
        done = start
        reason: str | None = None
        over_budget: str | None = None  # why the budget stopped the run
        warnings: list[str] = []
        with (self.stop or StopRequest()).installed() as stop:
            for step in range(start, self.total):
                started, before = time.perf_counter(), self.usage.counts()
                metrics = self.runner.run(
                    client,
                    batch_indices(len(self.runner), self.spec.batch_size, self.spec.seed, step),
                    self._adam(step),
                    step,
                )
                elapsed = time.perf_counter() - started
                done = step + 1
                metrics.update(
                    {
                        **self.usage.since(before),
                        "lr": self._adam(step).learning_rate,
                        "time/step_s": elapsed,
                        "train/tokens_per_s": metrics.get("train/tokens", 0) / max(elapsed, 1e-9),
                    }
                )
                self.log.log_metrics(done, metrics)
                if self.observer:
                    self.observer.on_step(done, metrics)
                finished = done == self.total
                concern = self.runner.concern()
                if concern is not None:
                    warnings.append(concern.message)
                    reason = concern.message if concern.stop and not finished else None
                if self.guard is not None and not finished and reason is None:
                    upcoming = self._upcoming(metrics, done)
                    over_budget = self.guard.check(self.log.usage(done), upcoming)
                halt = (
                    stop.requested or reason is not None or over_budget is not None
                ) and not finished
                if halt or finished or self._due(self.spec.checkpoints.every_steps, done):
                    last = self._checkpoint(client, done, final=finished)
                if over_budget is None:  # stopped by the budget, the run spends nothing more
                    self._evaluate(client, done)
                if halt:
                    break
        # Nothing to run (resume at the end) still leaves a candidate.
        if last is None or last.step != done:
            last = self._checkpoint(client, done, final=done == self.total)
        status: Literal["finished", "interrupted", "stopped", "budget"] = (
            "finished"
            if done == self.total
            else "stopped"
            if reason
            else "budget"
            if over_budget
            else "interrupted"
        )
        reason = reason or over_budget
        self.log.write_status(
            status,
            steps_done=done,
            total_steps=self.total,
            candidate=last.registry_ref or last.sampler_path,
            reason=reason,
            warnings=warnings,
        )
        result = TrainResult(
            self.log.run_id, self.log.dir, status, done, self.total, last, reason, tuple(warnings)
        )
        if self.observer:
            self.observer.on_end(result)
        return result


TOKEN_KEYS = ("train/tokens", "prefill/tokens", "sample/tokens")


def _tokens(metrics: Mapping[str, object]) -> dict[str, float]:
    """A metrics row's token counts (trained, prefilled, sampled); a missing one counts 0."""
    return {key: _number(metrics.get(key)) for key in TOKEN_KEYS}


def _number(value: object) -> float:
    return float(value) if isinstance(value, (int, float)) else 0.0


def _sum(tokens: dict[str, float]) -> float:
    return sum(tokens.values())


def _run_id_of(tinker_path: str) -> str | None:
    if tinker_path.startswith("tinker://"):
        return tinker_path[len("tinker://") :].split("/", 1)[0]
    return None
