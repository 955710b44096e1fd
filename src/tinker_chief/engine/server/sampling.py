"""Sampling sessions and `asample`: resolve what to sample from, validate, queue for batching.

A sampling session points at a sampler key of the backend: a base model name, a saved
checkpoint loaded with `backend.load_sampler`, or an in-memory snapshot made by
`save_weights_and_get_sampling_client`. `asample` answers at once with a future that carries
one `sample_sequence_id` per requested sample (SDK >= 0.26 asserts on it); the scheduler
batches concurrent requests into one backend call.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from tinker.types.create_sampling_session_request import CreateSamplingSessionRequest
from tinker.types.sample_request import SampleRequest as WireSampleRequest

from tinker_chief.engine.backend import SampleRequest
from tinker_chief.engine.server import codec
from tinker_chief.engine.server.basemodels import BaseInfo, canonical_name
from tinker_chief.engine.server.errors import InvalidRequestError, NotFoundError
from tinker_chief.engine.server.service import EngineService, SamplerState, check_tokens


class SamplingService:
    def __init__(self, engine: EngineService) -> None:
        self.engine = engine

    def prepare_sampler(self, model_path: str | None, base_model: str | None):
        """A callable for the compute thread that loads the sampler and returns its state."""
        if model_path:
            record, directory = self.engine.store.resolve(model_path)
            run = self.engine.store.get_run(record.run_id)
            if base_model and canonical_name(base_model) != run.base_model:
                raise InvalidRequestError(f"{model_path} was trained on {run.base_model}, not {base_model}")

            def load_checkpoint() -> SamplerState:
                self.engine.catalog.info(run.base_model)
                return SamplerState(self.engine.backend.load_sampler(directory), run.base_model, model_path)
            return load_checkpoint
        if not base_model:
            raise InvalidRequestError("expected model_path (a tinker:// checkpoint) or base_model")
        name = canonical_name(base_model)

        def load_base() -> SamplerState:
            self.engine.catalog.info(name)
            return SamplerState(name, name, None)
        return load_base

    def register_session(self, request: CreateSamplingSessionRequest, state: SamplerState) -> str:
        sampling_session_id = f"{request.session_id}:sample:{request.sampling_session_seq_id}"
        self.engine.samplers[sampling_session_id] = state
        return sampling_session_id

    def sampler(self, sampling_session_id: str) -> SamplerState:
        state = self.engine.samplers.get(sampling_session_id)
        if state is None:
            raise NotFoundError(f"unknown sampler {sampling_session_id!r} (the engine may have restarted; "
                                "create a new sampling client)")
        return state

    def _reloader(self, state: SamplerState):
        """Compute-thread hook: the backend keeps a bounded cache of adapters, so a checkpoint's
        sampler may have been evicted; `load_sampler` returns the cached key or loads it again."""
        def refresh(request: SampleRequest) -> SampleRequest:
            _, directory = self.engine.store.resolve(state.model_path)
            state.sampler_key = self.engine.backend.load_sampler(directory)
            return replace(request, sampler=state.sampler_key)
        return refresh

    def describe(self, sampler_id: str) -> dict:
        state = self.sampler(sampler_id)
        return {"sampler_id": sampler_id, "base_model": state.base_model, "model_path": state.model_path}

    def asample(self, request: WireSampleRequest, state: SamplerState) -> dict:
        info = self.engine.catalog.cached(state.base_model)
        eos = info.eos_tokens if info else ()
        backend_request = codec.sample_request(request, state.sampler_key, eos)
        if info is not None:
            if request.sampling_params.max_tokens is None:  # our default must fit, the client's must not
                room = max(1, info.max_context_length - len(backend_request.prompt))
                settings = replace(backend_request.settings, max_tokens=min(backend_request.settings.max_tokens, room))
                backend_request = replace(backend_request, settings=settings)
            _check_prompt(backend_request.prompt, backend_request.settings.max_tokens, info)
        request_id = self.engine.futures.create("sample")
        self.engine.scheduler.submit_sample(
            request_id, backend_request, lambda result: codec.encode_sample(result, request),
            refresh=self._reloader(state) if state.model_path else None)
        return {"request_id": request_id,
                "sample_sequence_ids": [f"{request_id}:{i}" for i in range(request.num_samples)]}


def _check_prompt(prompt: tuple[int, ...], max_tokens: int, info: BaseInfo) -> None:
    check_tokens("asample: prompt", np.asarray(prompt, dtype=np.int64), info)
    if len(prompt) + max_tokens > info.max_context_length:
        raise InvalidRequestError(
            f"asample: prompt ({len(prompt)} tokens) + max_tokens ({max_tokens}) exceed the context "
            f"length of {info.name} ({info.max_context_length})")
