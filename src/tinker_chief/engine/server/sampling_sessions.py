"""Sampling sessions and `asample`: resolve what to sample from, validate, queue for batching.

A sampling session points at a sampler key of the backend: a base model name, a saved
checkpoint loaded with `backend.load_sampler`, or an in-memory snapshot made by
`save_weights_and_get_sampling_client`. `asample` answers at once with a future that carries
one `sample_sequence_id` per requested sample (SDK >= 0.26 asserts on it); the scheduler
batches concurrent requests into one backend call. A sample longer than the engine's sampling
memory holds (prompt + max_tokens positions of KV cache) is refused here, before it is queued.
"""

from __future__ import annotations

from dataclasses import replace

from tinker.types.create_sampling_session_request import CreateSamplingSessionRequest
from tinker.types.sample_request import SampleRequest as WireSampleRequest

from tinker_chief.engine.backend import SampleRequest, SampleResult, check_kv_cache_fits
from tinker_chief.engine.server import codec
from tinker_chief.engine.server.base_model_facts import BaseInfo
from tinker_chief.engine.server.http_errors import InvalidRequestError, NotFoundError, shown
from tinker_chief.engine.server.service import EngineService, SamplerState, check_tokens
from tinker_chief.models import public_model_name


class SamplingSessions:
    def __init__(self, engine: EngineService) -> None:
        self.engine = engine

    def prepare_sampler(self, model_path: str | None, base_model: str | None):
        """A callable for the compute thread that loads the sampler and returns its state."""
        if model_path:
            lease = self.engine.store.lease(model_path)  # released once the sampler is registered
            try:
                run = self.engine.store.get_run(lease.record.run_id)
                if base_model and self.engine.catalog.canonical(base_model) != run.base_model:
                    raise InvalidRequestError(
                        f"{model_path} was trained on {public_model_name(run.base_model)}, "
                        f"not {base_model}"
                    )
            except Exception:
                lease.release()
                raise

            def load_checkpoint() -> SamplerState:
                with lease.reading(keep=True) as directory:
                    self.engine.catalog.info(run.base_model)
                    key = self.engine.backend.load_sampler(directory)
                return SamplerState(key, run.base_model, model_path, lease)

            return load_checkpoint
        if not base_model:
            raise InvalidRequestError("expected model_path (a tinker:// checkpoint) or base_model")
        name = self.engine.catalog.canonical(base_model)

        def load_base() -> SamplerState:
            self.engine.catalog.info(name)
            return SamplerState(name, name, None)

        return load_base

    def register_session(self, request: CreateSamplingSessionRequest, state: SamplerState) -> str:
        sampling_session_id = f"{request.session_id}:sample:{request.sampling_session_seq_id}"
        self.engine.samplers[sampling_session_id] = state
        state.release()  # registered: from now on the session itself keeps the checkpoint in use
        return sampling_session_id

    def sampler(self, sampling_session_id: str) -> SamplerState:
        state = self.engine.samplers.get(sampling_session_id)
        if state is None:
            raise NotFoundError(
                f"unknown sampler {shown(sampling_session_id)} (its session ended or the engine "
                "restarted; create a new sampling client)"
            )
        # A sign of life of its session.
        self.engine.sessions.touch(sampling_session_id.split(":", 1)[0])
        return state

    def _reloader(self, state: SamplerState, model_path: str):
        """Compute-thread hook: the backend keeps a bounded cache of adapters, so a checkpoint's
        sampler may have been evicted; `load_sampler` returns the cached key or loads it again.
        The sampler held the checkpoint since before it expired, so expiry does not stop it."""

        def refresh(request: SampleRequest) -> SampleRequest:
            try:
                _, directory = self.engine.store.resolve(model_path, allow_expired=True)
                state.sampler_key = self.engine.backend.load_sampler(directory)
            finally:
                state.release()  # a one-off sample's lease (sessions released theirs already)
            return replace(request, sampler=state.sampler_key)

        return refresh

    def describe(self, sampler_id: str) -> dict:
        state = self.sampler(sampler_id)
        return {
            "sampler_id": sampler_id,
            "base_model": public_model_name(state.base_model),
            "model_path": state.model_path,
        }

    def asample(self, request: WireSampleRequest, state: SamplerState) -> dict:
        try:
            backend_request = self._backend_request(request, state)
        except Exception:
            state.release()  # a refused one-off sample never reaches the hook that releases it
            raise
        request_id = self.engine.futures.create("sample")
        self.engine.scheduler.submit_sample(
            request_id,
            backend_request,
            lambda result: self._billed(result, request, state, len(backend_request.prompt)),
            refresh=self._reloader(state, state.model_path) if state.model_path else None,
        )
        return {
            "request_id": request_id,
            "sample_sequence_ids": [f"{request_id}:{i}" for i in range(request.num_samples)],
        }

    def _billed(
        self, result: SampleResult, request: WireSampleRequest, state: SamplerState, prompt: int
    ) -> bytes:
        """The sample's answer, its prefilled and sampled tokens counted for its session."""
        session = (request.sampling_session_id or "").split(":", 1)[0] or None
        base = public_model_name(state.base_model)
        billing = self.engine.billing
        billing.add("sampling_prefill", session, base, prompt)
        billing.add(
            "sampling_sample", session, base, sum(len(seq.tokens) for seq in result.sequences)
        )
        return codec.encode_sample(result, request)

    def _backend_request(self, request: WireSampleRequest, state: SamplerState) -> SampleRequest:
        info = self.engine.catalog.cached(state.base_model)
        eos = info.eos_tokens if info else ()
        backend_request = codec.sample_request(
            request, state.sampler_key, eos, vocab_size=info.vocab_size if info else None
        )
        if info is not None:
            # Our default must fit, the client's must not.
            if request.sampling_params.max_tokens is None:
                room = max(1, info.max_context_length - len(backend_request.prompt))
                settings = replace(
                    backend_request.settings,
                    max_tokens=min(backend_request.settings.max_tokens, room),
                )
                backend_request = replace(backend_request, settings=settings)
            _check_prompt(backend_request.prompt, backend_request.settings.max_tokens, info)
            self._check_kv_cache(backend_request, info)
        return backend_request

    def _check_kv_cache(self, request: SampleRequest, info: BaseInfo) -> None:
        budget, max_tokens = self.engine.backend.sampling_memory, request.settings.max_tokens
        try:
            check_kv_cache_fits(len(request.prompt), max_tokens, info.kv_bytes_per_token, budget)
        except InvalidRequestError as exc:
            flag = "chief engine serve --sampling-memory-gib sets that memory"
            raise InvalidRequestError(f"asample: {exc}; {flag}") from None


def _check_prompt(prompt: tuple[int, ...], max_tokens: int, info: BaseInfo) -> None:
    check_tokens("asample: prompt", prompt, info)
    if len(prompt) + max_tokens > info.max_context_length:
        raise InvalidRequestError(
            f"asample: prompt ({len(prompt)} tokens) + max_tokens ({max_tokens}) exceed the "
            f"context length of {info.name} ({info.max_context_length})"
        )
