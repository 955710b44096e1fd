"""The engine's request logic behind the HTTP routes: sessions, training models, checkpoints.

Each SDK call is validated here *before* it is queued (unknown model, tokens outside the
vocabulary, sequences over the context length, bad names, unknown `tinker://` paths), so the
client gets a 4xx with a specific sentence; the work itself is handed to the scheduler and
its result lands in the future table. Model ids follow the SDK's own convention
`<session>:train:<model_seq_id>` (0.38 derives it client-side for `load_weights`), and a model
id doubles as its training run id in `tinker://` paths. Sampling lives in `sampling_sessions.py`.

Clients that share the engine share its memory, so a session's training and sampling clients
are unloaded when it finishes (`ServiceClient.close()`) or goes `session_timeout` seconds
without a heartbeat or a request naming it (the app's reaper looks every `reap_interval()`
seconds, so this happens even when no other request arrives; requests of its models still
waiting for an earlier seq_id then fail, saying why), and at most `max_training_clients` training
clients are loaded at once (each holds a LoRA adapter, its gradients and AdamW moments).
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tinker.types import AdamParams
from tinker.types.create_model_request import CreateModelRequest
from tinker.types.load_weights_request import LoadWeightsRequest
from tinker.types.optim_step_request import OptimStepRequest
from tinker.types.save_weights_external_request import SaveWeightsExternalRequest
from tinker.types.save_weights_for_sampler_request import SaveWeightsForSamplerRequest
from tinker.types.save_weights_request import SaveWeightsRequest

from tinker_chief.engine.backend import (
    AdamStep,
    ComputeBackend,
    DatumArrays,
    ForwardBackwardCall,
    LoraSettings,
    check_adam_step,
)
from tinker_chief.engine.server import codec
from tinker_chief.engine.server.base_model_facts import BaseInfo, BaseModelCatalog
from tinker_chief.engine.server.billing_ledger import BillingLedger, session_of_run
from tinker_chief.engine.server.futures import FutureTable, Payload
from tinker_chief.engine.server.http_errors import (
    InvalidRequestError,
    NotFoundError,
    UnsupportedError,
    shown,
)
from tinker_chief.engine.server.scheduler import Scheduler, Shareable
from tinker_chief.engine.server.sdk_usage import SdkUsage
from tinker_chief.engine.server.store import (
    CheckpointKind,
    CheckpointLease,
    CheckpointStore,
    Clock,
    RunRecord,
    validate_name,
    validate_ttl,
)
from tinker_chief.models import public_model_name

MAX_LORA_RANK = 1024
SESSION_TIMEOUT_S = 300.0  # the SDK heartbeats every 10 s: 5 silent minutes mean the client is gone
MAX_TRAINING_CLIENTS = 32  # as many as the sampler cache holds adapters
MAX_REAP_INTERVAL_S = 10.0


def reap_interval(session_timeout: float) -> float:
    """How often the reaper looks for silent sessions: a quarter of the timeout, at most 10 s."""
    return min(session_timeout / 4, MAX_REAP_INTERVAL_S)


@dataclass
class TrainingModel:
    model_id: str
    session_id: str
    base_model: str
    lora: LoraSettings


@dataclass
class SamplerState:
    sampler_key: str
    base_model: str
    model_path: str | None
    # Holds the checkpoint from resolving `model_path` until the sampler is registered (then the
    # registration itself keeps it in use) or, for a one-off sample, until its adapter is loaded.
    lease: CheckpointLease | None = field(default=None, repr=False, compare=False)

    def release(self) -> None:
        if self.lease is not None:
            self.lease.release()


class _Sessions:
    """Live sessions and when each was last heard from (a heartbeat or a request naming it)."""

    def __init__(self, timeout: float, clock: Callable[[], float]) -> None:
        self.timeout, self._clock = timeout, clock
        self._last_seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def add(self, session_id: str) -> None:
        with self._lock:
            self._last_seen[session_id] = self._clock()

    def touch(self, session_id: str) -> bool:
        """Record a sign of life; False for a session that is not live."""
        with self._lock:
            if session_id not in self._last_seen:
                return False
            self._last_seen[session_id] = self._clock()
            return True

    def remove(self, session_id: str) -> bool:
        with self._lock:
            return self._last_seen.pop(session_id, None) is not None

    def pop_silent(self) -> list[str]:
        """End and return the sessions silent for longer than the timeout."""
        deadline = self._clock() - self.timeout
        with self._lock:
            silent = [sid for sid, seen in self._last_seen.items() if seen < deadline]
            for sid in silent:
                del self._last_seen[sid]
        return silent


class EngineService:
    def __init__(
        self,
        backend: ComputeBackend,
        state_dir: Path,
        clock: Clock = time.time,
        *,
        catalog: BaseModelCatalog | None = None,
        session_timeout: float = SESSION_TIMEOUT_S,
        max_training_clients: int = MAX_TRAINING_CLIENTS,
        session_clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.backend = backend
        self.futures = FutureTable()
        self.scheduler = Scheduler(backend, self.futures)
        self.store = CheckpointStore(state_dir, clock)
        self.sdk_usage = SdkUsage()
        self.catalog = catalog or BaseModelCatalog(backend)
        self.models: dict[str, TrainingModel] = {}
        self.samplers: dict[str, SamplerState] = {}
        self.sessions = _Sessions(session_timeout, session_clock)
        self.max_training_clients = max_training_clients
        self._creations: dict[str, str] = {}  # model_id -> request id (SDK retries)
        self._auto_names = itertools.count(1)
        self.billing = BillingLedger(state_dir, clock)
        self.store.on_delete = self.billing.checkpoints_deleted
        self.billing.adopt(self.store.all_records(), self._base_of_run)

    # -- sessions ----------------------------------------------------------------------------

    def create_session(
        self, project_id: str | None = None, user_metadata: dict | None = None
    ) -> str:
        self.end_silent_sessions()
        session_id = uuid.uuid4().hex[:12]
        self.sessions.add(session_id)
        self.billing.record_session(session_id, project_id, user_metadata)
        return session_id

    def require_session(self, session_id: str) -> None:
        """Check that the session is live, and count the request as a sign of life."""
        self.end_silent_sessions()
        if not self.sessions.touch(session_id):
            raise NotFoundError(
                f"unknown session {shown(session_id)}: it was closed, went "
                f"{self.sessions.timeout:.0f} s without a heartbeat, or the engine restarted "
                "(create a new ServiceClient)"
            )

    def finish_session(self, session_id: str) -> None:
        # Lenient on purpose: a client closing after an engine restart should not crash its script.
        if self.sessions.remove(session_id):
            self._unload_session(session_id, "its session was closed")

    def end_silent_sessions(self) -> None:
        """End the sessions silent for longer than the timeout (the app's reaper calls this
        periodically; requests that check sessions do too)."""
        for session_id in self.sessions.pop_silent():
            silence = f"its session sent no heartbeat for {self.sessions.timeout:g} s"
            self._unload_session(session_id, silence)

    def _unload_session(self, session_id: str, why: str) -> None:
        """Forget the session's clients now; free their memory on the compute thread after the
        work queued for them; requests parked for a seq_id that never came fail, saying `why`."""
        # Snapshots (tuple() copies in one step): the compute thread may drop a failed model
        # meanwhile.
        models = [m for m, model in tuple(self.models.items()) if model.session_id == session_id]
        for model_id in models:
            self.models.pop(model_id, None)
            self._creations.pop(model_id, None)
        prefix = f"{session_id}:"  # sampling session ids are <session>:sample:<n>
        for key in [key for key in tuple(self.samplers) if key.startswith(prefix)]:
            # Its adapter stays in the backend's bounded sampler cache until newer ones push it out.
            if (state := self.samplers.pop(key, None)) is not None:
                state.release()
        # After the work already queued for the model (its creation included)
        for model_id in models:
            self.scheduler.submit("", self._unloader(model_id, why))

    def _check_capacity(self, endpoint: str) -> None:
        if len(self.models) >= self.max_training_clients:
            raise InvalidRequestError(
                f"{endpoint}: this engine already holds {len(self.models)} training clients, its "
                f"limit (chief engine serve --max-training-clients {self.max_training_clients}); "
                "free some first: ServiceClient.close() unloads the clients of its session, and a "
                f"session that sends no heartbeat for {self.sessions.timeout:.0f} s is unloaded "
                "automatically"
            )

    # -- models ------------------------------------------------------------------------------

    def model(self, model_id: str) -> TrainingModel:
        found = self.models.get(model_id)
        if found is None:
            raise NotFoundError(
                f"unknown model_id {shown(model_id)}: no training client with this id is "
                "loaded on this engine (it may have been unloaded, its session ended, or the "
                "engine restarted)"
            )
        self.sessions.touch(found.session_id)
        return found

    def create_model(self, request: CreateModelRequest) -> str:
        self.require_session(request.session_id)
        model_id = f"{request.session_id}:train:{request.model_seq_id}"
        if model_id in self._creations:
            return self._creations[model_id]
        base = self.catalog.canonical(request.base_model)
        lora = _lora_settings(request)
        if getattr(request.optimizer_config, "type", "adamw") != "adamw":
            raise UnsupportedError(f"optimizer {request.optimizer_config.type!r} (only adamw)")
        self._check_capacity("create_model")
        request_id = self.futures.create("create_model")
        self._creations[model_id] = request_id
        self._register(TrainingModel(model_id, request.session_id, base, lora))

        def run() -> dict:
            self.catalog.info(base)
            self.backend.create_training_model(model_id, base, lora)
            self.store.save_run(
                RunRecord(
                    model_id, base, asdict(lora), user_metadata=_str_dict(request.user_metadata)
                )
            )
            return {"model_id": model_id, "type": "create_model"}

        self.scheduler.submit(request_id, self._forget_on_error(model_id, run))
        return request_id

    def _register(self, model: TrainingModel) -> None:
        self.models[model.model_id] = model
        self.scheduler.open_model(model.model_id)

    def _forget_on_error(self, model_id: str, run: Callable[[], dict]) -> Callable[[], dict]:
        """A model whose creation failed disappears again, so the client can retry cleanly."""

        def wrapped() -> dict:
            try:
                return run()
            except Exception as exc:
                self.models.pop(model_id, None)
                self._creations.pop(model_id, None)
                self.scheduler.close_model(model_id, f"creating model {model_id} failed ({exc})")
                raise

        return wrapped

    def get_info(self, model_id: str) -> dict:
        model = self.model(model_id)
        info, name = self.catalog.cached(model.base_model), public_model_name(model.base_model)
        return {
            "type": "get_info",
            "model_id": model_id,
            "model_data": {
                "arch": info.arch if info else None,
                "model_name": name,
                "tokenizer_id": self.catalog.tokenizer_id(model.base_model),
            },
            "is_lora": True,
            "lora_rank": model.lora.rank,
            "model_name": name,
        }

    def unload_model(self, model_id: str) -> str:
        self.model(model_id)
        request_id = self.futures.create("unload_model")
        self.scheduler.submit(request_id, self._unloader(model_id, "the client unloaded it"))
        return request_id

    def _unloader(self, model_id: str, why: str) -> Callable[[], dict]:
        def run() -> dict:
            try:
                self.backend.unload_model(model_id)
            finally:  # even if the backend never had it (a failed creation): its sequence ends here
                self.models.pop(model_id, None)
                self.scheduler.close_model(model_id, f"model {model_id} was unloaded ({why})")
            return {"model_id": model_id, "type": "unload_model"}

        return run

    # -- training ----------------------------------------------------------------------------

    def _submit_ordered(
        self,
        model_id: str,
        seq_id: int | None,
        kind: str,
        prepare: Callable[[TrainingModel], Callable[[], Payload] | Shareable],
    ) -> str:
        """Validate with `prepare` (which returns the work), then queue it in seq_id order."""
        model = self.model(model_id)
        if (known := self.scheduler.known_request(model.model_id, seq_id)) is not None:
            return known  # an SDK retry of a request we already have
        with self._rejecting(model.model_id, seq_id):
            run = prepare(model)
        request_id = self.futures.create(kind)
        self.scheduler.submit_ordered(model.model_id, seq_id, request_id, run)
        return request_id

    def forward_backward(self, body: bytes) -> str:
        message = codec.decode_forward_backward(body)

        def prepare(model: TrainingModel) -> Shareable:
            call = codec.forward_backward_call(message)
            if (info := self.catalog.cached(model.base_model)) is not None:
                for index, datum in enumerate(call.data):
                    _check_datum(index, datum, info)
            call.model_id = model.model_id
            tokens = len(call.data) * max(len(datum.tokens) for datum in call.data)
            # Clients on one base share a batched forward (scheduler.Shareable).
            return Shareable(
                (model.base_model, call.forward_only), tokens, call, self._forward_backward_many
            )

        return self._submit_ordered(
            message.model_id, message.seq_id or None, "forward_backward", prepare
        )

    def _forward_backward_many(self, calls: list[ForwardBackwardCall]) -> list[Payload | Exception]:
        outcomes = self.backend.forward_backward_many(calls)
        for call, outcome in zip(calls, outcomes, strict=True):
            if not isinstance(outcome, Exception):  # billed: the work that was done
                tokens = sum(len(datum.tokens) for datum in call.data)
                self.billing.add(
                    "training",
                    session_of_run(call.model_id),
                    self._base_of_run(call.model_id),
                    tokens,
                )
        return [
            outcome if isinstance(outcome, Exception) else codec.encode_forward_backward(outcome)
            for outcome in outcomes
        ]

    def _base_of_run(self, run_id: str) -> str | None:
        """The public name of a training run's base model (what billing events name)."""
        model = self.models.get(run_id)
        if model is not None:
            return public_model_name(model.base_model)
        try:
            return public_model_name(self.store.get_run(run_id).base_model)
        except Exception:  # a run whose record is gone: its usage is still counted
            return None

    def optim_step(self, request: OptimStepRequest) -> str:
        def prepare(model: TrainingModel) -> Callable[[], dict]:
            step = _adam_step(request.optim_params)

            def run() -> dict:
                metrics = self.backend.optim_step(model.model_id, step)
                return {"metrics": {k: float(v) for k, v in metrics.items()}, "type": "optim_step"}

            return run

        return self._submit_ordered(request.model_id, request.seq_id, "optim_step", prepare)

    # -- checkpoints -------------------------------------------------------------------------

    def save_weights(self, request: SaveWeightsRequest) -> str:
        def prepare(model: TrainingModel) -> Callable[[], dict]:
            ttl_seconds = validate_ttl(request.ttl_seconds, "save_weights: ttl_seconds")
            name = validate_name(_name_or(request.path, "state", self._auto_names))

            return lambda: self._persist(
                model,
                "weights",
                name,
                request.overwrite,
                self.backend.save_training_state,
                request.user_metadata,
                ttl_seconds,
            )

        return self._submit_ordered(request.model_id, request.seq_id, "save_weights", prepare)

    def save_weights_for_sampler(self, request: SaveWeightsForSamplerRequest) -> str:
        def prepare(model: TrainingModel) -> Callable[[], dict]:
            seq_id = request.sampling_session_seq_id
            if seq_id is not None:
                # Ephemeral: no checkpoint, so no ttl_seconds or user_metadata to keep (the SDK
                # sends none).
                return lambda: self._ephemeral_sampler(model, seq_id, request.kind)
            ttl_seconds = validate_ttl(request.ttl_seconds, "save_weights_for_sampler: ttl_seconds")
            name = validate_name(_name_or(request.path, "sampler", self._auto_names))

            # The request has no overwrite flag: an existing sampler checkpoint name is a conflict.
            return lambda: self._persist(
                model,
                "sampler_weights",
                name,
                False,
                self.backend.save_sampler_weights,
                request.user_metadata,
                ttl_seconds,
            )

        return self._submit_ordered(
            request.model_id, request.seq_id, "save_weights_for_sampler", prepare
        )

    def save_weights_external(self, request: SaveWeightsExternalRequest) -> str:
        """The Hugging Face-format export that `tinker checkpoint download` fetches file by file:
        for a LoRA run that is the PEFT adapter, the same files a sampler checkpoint holds."""

        def prepare(model: TrainingModel) -> Callable[[], dict]:
            if request.age_encryption_recipients:
                raise UnsupportedError(
                    "save_weights_external with age_encryption_recipients (encrypted exports)"
                )
            ttl_seconds = validate_ttl(request.ttl_seconds, "save_weights_external: ttl_seconds")
            name = validate_name(request.path)
            return lambda: self._persist(
                model,
                "external_weights",
                name,
                False,
                self.backend.save_sampler_weights,
                None,
                ttl_seconds,
            )

        return self._submit_ordered(
            request.model_id, request.seq_id, "save_weights_external", prepare
        )

    def _persist(
        self,
        model: TrainingModel,
        kind: CheckpointKind,
        name: str,
        overwrite: bool,
        write: Callable[[str, Path], None],
        user_metadata: dict | None,
        ttl_seconds: int | None,
    ) -> dict:
        record = self.store.save_checkpoint(
            model.model_id,
            kind,
            name,
            overwrite,
            lambda directory: write(model.model_id, directory),
            _str_dict(user_metadata),
            ttl_seconds,
        )
        self.store.touch_run(model.model_id)
        self.billing.checkpoint_saved(record, public_model_name(model.base_model))
        return {"path": record.tinker_path}

    def _ephemeral_sampler(
        self, model: TrainingModel, sampling_session_seq_id: int, kind: str
    ) -> dict:
        """save_weights_and_get_sampling_client: in memory, no path. `snapshot` copies the weights
        as they are now; `inflight` samples the training adapter itself, so it follows every
        later optim_step (the SDK's contract: the weights at this save or newer)."""
        if kind == "inflight":
            key = self.backend.live_sampler(model.model_id)
        else:
            key = self.backend.snapshot_for_sampling(model.model_id)
        sampling_session_id = f"{model.session_id}:sample:{sampling_session_seq_id}"
        self.samplers[sampling_session_id] = SamplerState(key, model.base_model, None)
        return {"sampling_session_id": sampling_session_id, "type": "save_weights_for_sampler"}

    def checkpoints_in_use(self) -> set[str]:
        """Tinker paths that sampling sessions were loaded from (the deletion pass keeps them)."""
        return {state.model_path for state in tuple(self.samplers.values()) if state.model_path}

    def load_weights(self, request: LoadWeightsRequest) -> str:
        if request.session_id is None and request.model_id is not None:  # legacy, inside a sequence
            with self._rejecting(request.model_id, request.seq_id):
                return self._load_weights(request)
        return self._load_weights(request)

    def _load_weights(self, request: LoadWeightsRequest) -> str:
        if request.weights_access_token:
            raise UnsupportedError(
                "load_weights with weights_access_token (checkpoints of other accounts)"
            )
        optimizer = getattr(request.optimizer_config, "type", "adamw")
        if optimizer != "adamw":
            raise UnsupportedError(f"load_weights: optimizer {optimizer!r} (only adamw)")
        if request.session_id is None:
            return self._load_into_existing(request)
        self.require_session(request.session_id)
        model_id = f"{request.session_id}:train:{request.model_seq_id}"
        if model_id in self._creations:
            return self._creations[model_id]  # an SDK retry
        self._check_capacity("load_weights")
        lease, run = self._lease_loadable(request)
        request_id = self.futures.create("load_weights")
        self._creations[model_id] = request_id
        self._register(
            TrainingModel(model_id, request.session_id, run.base_model, run.lora_settings())
        )

        def work() -> dict:
            with lease.reading() as directory:
                self.catalog.info(run.base_model)
                lora = self.backend.load_training_state(model_id, directory, request.optimizer)
            self.models[model_id].lora = lora
            self.store.save_run(
                RunRecord(
                    model_id,
                    run.base_model,
                    asdict(lora),
                    user_metadata=_str_dict(request.user_metadata),
                )
            )
            return {"path": request.path, "model_id": model_id, "type": "load_weights"}

        self.scheduler.submit(request_id, self._forget_on_error(model_id, work))
        return request_id

    def _lease_loadable(self, request: LoadWeightsRequest) -> tuple[CheckpointLease, RunRecord]:
        """Hold the checkpoint until the load has read it (the expiry pass skips it meanwhile),
        once it is known to fit the request."""
        lease = self.store.lease(request.path)
        try:
            return lease, self._check_loadable(request, lease)
        except Exception:
            lease.release()
            raise

    def _check_loadable(self, request: LoadWeightsRequest, lease: CheckpointLease) -> RunRecord:
        if request.optimizer and lease.record.kind != "weights":
            raise InvalidRequestError(
                f"{request.path} is a sampler checkpoint (weights only); optimizer "
                "state exists only in save_state checkpoints (tinker://<run>/weights/<name>)"
            )
        run = self.store.get_run(lease.record.run_id)
        if request.base_model and self.catalog.canonical(request.base_model) != run.base_model:
            raise InvalidRequestError(
                f"{request.path} was trained on {public_model_name(run.base_model)}, "
                f"not {request.base_model}"
            )
        return run

    def _load_into_existing(self, request: LoadWeightsRequest) -> str:
        if request.model_id is None:
            raise InvalidRequestError(
                "load_weights: expected either session_id + model_seq_id or model_id"
            )
        model = self.model(request.model_id)
        lease, _ = self._lease_loadable(request)
        request_id = self.futures.create("load_weights")

        def run() -> dict:
            with lease.reading() as directory:
                self.backend.unload_model(model.model_id)
                model.lora = self.backend.load_training_state(
                    model.model_id, directory, request.optimizer
                )
            return {"path": request.path, "model_id": model.model_id, "type": "load_weights"}

        self.scheduler.submit_ordered(model.model_id, request.seq_id, request_id, run)
        return request_id

    def _rejecting(self, model_id: str, seq_id: int | None):
        return _SkipOnError(self.scheduler, model_id, seq_id)


class _SkipOnError:
    """Context manager: a request rejected before queuing still consumes its seq_id."""

    def __init__(self, scheduler: Scheduler, model_id: str, seq_id: int | None) -> None:
        self.scheduler, self.model_id, self.seq_id = scheduler, model_id, seq_id

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, tb) -> None:  # never suppresses the error
        if exc_type is not None:
            self.scheduler.skip(self.model_id, self.seq_id)


def _lora_settings(request: CreateModelRequest) -> LoraSettings:
    config = request.lora_config
    if config is None:
        raise InvalidRequestError(
            "create_model: field lora_config is missing (only LoRA training is supported)"
        )
    if not 1 <= config.rank <= MAX_LORA_RANK:
        raise InvalidRequestError(
            f"create_model: lora_config.rank must be between 1 and {MAX_LORA_RANK}, "
            f"got {config.rank}"
        )
    if not (config.train_mlp or config.train_attn or config.train_unembed):
        raise InvalidRequestError(
            "create_model: at least one of train_mlp, train_attn, train_unembed must be true"
        )
    return LoraSettings(
        rank=config.rank,
        seed=config.seed,
        train_mlp=config.train_mlp,
        train_attn=config.train_attn,
        train_unembed=config.train_unembed,
    )


def _adam_step(params: object) -> AdamStep:
    if not isinstance(params, AdamParams):
        raise UnsupportedError(
            f"optimizer step {getattr(params, 'type', type(params).__name__)!r} (only Adam)"
        )
    step = AdamStep(**params.model_dump())
    try:
        check_adam_step(step)
    except InvalidRequestError as exc:
        raise InvalidRequestError(f"optim_step: {exc}") from None
    return step


def _check_datum(index: int, datum: DatumArrays, info: BaseInfo) -> None:
    where = f"forward_backward: data[{index}]"
    check_tokens(where + ".model_input", datum.tokens, info)
    if (targets := datum.loss_fn_inputs.get("target_tokens")) is not None:
        check_tokens(where + ".loss_fn_inputs['target_tokens']", targets, info, check_length=False)


def check_tokens(
    where: str,
    tokens: np.ndarray | Sequence[int],
    info: BaseInfo,
    check_length: bool = True,
) -> None:
    """Token ids in [0, vocab) and, unless told otherwise, no more of them than the context holds.
    A client's list is checked before it becomes an array: an id past int64 is out of range, not
    an OverflowError."""
    if len(tokens):
        if isinstance(tokens, np.ndarray):
            low, high = int(tokens.min()), int(tokens.max())
        else:
            low, high = min(tokens), max(tokens)
        if low < 0 or high >= info.vocab_size:
            raise InvalidRequestError(
                f"{where}: token id {shown(low if low < 0 else high)} is outside the vocabulary of "
                f"{info.name} (expected 0 <= id < {info.vocab_size})"
            )
    limit = info.max_context_length
    if check_length and len(tokens) > limit:
        too_long = f"{len(tokens)} tokens exceed the context length of {info.name} ({limit})"
        raise InvalidRequestError(f"{where}: {too_long}")


def _name_or(name: str | None, prefix: str, counter: Iterator[int]) -> str:
    """The client's name; only an absent one (None) gets a generated name, "" is invalid."""
    return name if name is not None else f"{prefix}-{next(counter):04d}"


def _str_dict(value: dict | None) -> dict[str, str] | None:
    return None if value is None else {str(k): str(v) for k, v in value.items()}
