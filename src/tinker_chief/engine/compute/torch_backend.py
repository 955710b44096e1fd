"""`TorchBackend`: the `ComputeBackend` the engine server drives, built on PyTorch + PEFT.

It keeps one frozen base per model name (`BasePool`), one `AdapterHost` (PEFT wrapper) per base,
and per training client a `TrainingAdapter`: its adapter slot, LoRA spec and AdamW state.
Gradients accumulate in the adapter's `.grad` across `forward_backward` calls until
`optim_step`, which is how the SDK's chunked batches and `forward_backward_custom` work.
`forward_backward_many` runs several clients' calls on one base as one decoder forward and one
backward, each client's rows through its own adapter (concurrent clients of a sweep).
Samplers are adapter slots too (snapshots of a training adapter, or adapters loaded from
disk), named by opaque keys, or a training adapter's own slot (inflight samplers, which follow
its weights); sampling is delegated to `sampler_pool.SamplerPool`.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from tinker_chief.engine.backend import (
    AdamStep,
    BaseModelInfo,
    ConflictError,
    DatumArrays,
    ForwardBackwardCall,
    ForwardBackwardResult,
    InvalidRequestError,
    LoraSettings,
    NotFoundError,
    ResultHook,
    SampleRequest,
    SampleResult,
)
from tinker_chief.engine.compute import checkpoint_io
from tinker_chief.engine.compute.adapters import AdapterHost, lora_config_for, slot_free_key
from tinker_chief.engine.compute.base_pool import BasePool, LoadedBase, canonical_name
from tinker_chief.engine.compute.devices import (
    choose_precision,
    default_sampling_memory,
    model_gemm_shapes,
)
from tinker_chief.engine.compute.forward import (
    PaddedBatch,
    decoder_hidden,
    pad_batch,
    score_hidden,
    target_logprobs,
)
from tinker_chief.engine.compute.kv_cache import kv_bytes_per_token
from tinker_chief.engine.compute.losses import OPTIONAL_INPUTS, LossDef, loss_def
from tinker_chief.engine.compute.optimizer import AdapterOptimizer
from tinker_chief.engine.compute.sampler_pool import SamplerPool, SamplerRef
from tinker_chief.files import read_json
from tinker_chief.models import materialize_model, resolve_model

LIVE_PREFIX = "inflight:"  # sampler keys that follow a training model's adapter
log = logging.getLogger("tinker_chief.engine")
# (logprobs, loss) of one call, or its error.
_Scored = tuple[torch.Tensor, torch.Tensor] | Exception
_Outcome = ForwardBackwardResult | Exception


@dataclass
class TrainingAdapter:
    """One training client's adapter on a shared base."""

    model_id: str
    base: LoadedBase
    host: AdapterHost
    slot: str
    spec: LoraSettings
    optimizer: AdapterOptimizer
    key_of: dict[str, str]  # PEFT parameter name -> slot-free key (portable across slots)


@dataclass
class _Prepared:
    """A validated `forward_backward` call: its model, loss and padded batch."""

    call: ForwardBackwardCall
    model: TrainingAdapter
    definition: LossDef
    batch: PaddedBatch


def _grad_mode(forward_only: bool) -> contextlib.AbstractContextManager:
    return torch.no_grad() if forward_only else contextlib.nullcontext()


def _result(
    batch: PaddedBatch, logprobs: torch.Tensor, loss: torch.Tensor
) -> ForwardBackwardResult:
    values = logprobs.detach().to("cpu", torch.float32).numpy()
    outputs = [
        {"logprobs": np.ascontiguousarray(values[row, :length])}
        for row, length in enumerate(batch.lengths)
    ]
    return ForwardBackwardResult(outputs=outputs, metrics={"loss:sum": float(loss.detach())})


class TorchBackend:
    """LoRA training, scoring and sampling for the local engine (single worker thread)."""

    def __init__(
        self,
        device: str = "auto",
        dtype: str = "auto",
        spill_root: Path | None = None,
        sampling_memory: int | None = None,
    ) -> None:
        """`spill_root`: where evicted sampler snapshots go (default: a private temp directory).
        `sampling_memory`: bytes of KV cache sampling may hold at once (default: half the device
        memory free now, `devices.default_sampling_memory`). `dtype="auto"` on a CPU is decided
        when the first base model loads (`_settle_precision`)."""
        self.precision = choose_precision(device, dtype, shapes=None)
        log.info("precision: %s (%s)", self.precision.name, self.precision.basis)
        self.device = self.precision.device
        self.sampling_memory = sampling_memory or default_sampling_memory(self.device)
        self._bases = BasePool(self.precision)
        self._hosts: dict[str, AdapterHost] = {}
        self._models: dict[str, TrainingAdapter] = {}
        self.samplers = SamplerPool(
            self.precision,
            self._base_and_host,
            spill_root,
            live=self._live_ref,
            kv_budget=self.sampling_memory,
        )

    # --- models -------------------------------------------------------------------------
    def base_models(self) -> list[BaseModelInfo]:
        return self._bases.infos()

    def kv_bytes_per_token(self, base_model: str) -> int:
        return kv_bytes_per_token(self._bases.config(base_model), self.precision.kv_dtype)

    def _base_and_host(self, name: str) -> tuple[LoadedBase, AdapterHost]:
        if self.precision.pending:
            self._settle_precision(name)
        base = self._bases.get(name)
        if base.info.name not in self._hosts:
            self._hosts[base.info.name] = AdapterHost(base.model)
        return base, self._hosts[base.info.name]

    def _settle_precision(self, name: str) -> None:
        """`auto`: bf16 or fp32, whichever the GEMM probe at this model's shapes finds faster
        (and in fp32 the faster kernel), before its weights load in that dtype; the engine's one
        precision from then on (a later base of other shapes computes in it too)."""
        config = read_json(materialize_model(resolve_model(canonical_name(name))) / "config.json")
        requested, shapes = self.precision.requested, model_gemm_shapes(config)
        precision = choose_precision(self.precision.device, requested, shapes)
        self.precision = self._bases.precision = self.samplers.precision = precision
        log.info("precision: %s (%s)", precision.name, precision.basis)

    def create_training_model(self, model_id: str, base_model: str, lora: LoraSettings) -> None:
        base, host = self._base_and_host(base_model)
        self._create(model_id, base, host, lora, lora_config_for(host.layout, lora, base.local_dir))

    def _create(
        self, model_id: str, base: LoadedBase, host: AdapterHost, spec: LoraSettings, config
    ) -> TrainingAdapter:
        if model_id in self._models:
            raise ConflictError(f"model {model_id!r} already exists")
        slot = host.new_slot()
        try:
            host.add(slot, config, spec.seed)
        except ValueError as error:  # PEFT: targets that do not exist in this model
            host.remove(slot)
            raise InvalidRequestError(
                f"cannot apply this LoRA config to {base.info.name}: {error}"
            ) from None
        params = host.parameters(slot)
        model = TrainingAdapter(
            model_id,
            base,
            host,
            slot,
            spec,
            AdapterOptimizer(params),
            {name: slot_free_key(name, slot) for name in params},
        )
        self._models[model_id] = model
        return model

    def _model(self, model_id: str) -> TrainingAdapter:
        if model_id not in self._models:
            raise NotFoundError(f"unknown model_id {model_id!r}: create a training client first")
        return self._models[model_id]

    def adapter_weights(self, model_id: str) -> dict[str, torch.Tensor]:
        """The adapter's current tensors under standard PEFT keys (CPU fp32 copies)."""
        model = self._model(model_id)
        return model.host.state_dict(model.slot)

    def lora_config(self, model_id: str):
        """The `peft.LoraConfig` this model's adapter was built with."""
        model = self._model(model_id)
        return model.host.config(model.slot)

    def unload_model(self, model_id: str) -> None:
        model = self._model(model_id)
        model.host.remove(model.slot)
        del self._models[model_id]

    # --- training -----------------------------------------------------------------------
    def forward_backward(
        self,
        model_id: str,
        data: list[DatumArrays],
        loss_fn: str,
        loss_fn_config: dict[str, float | str],
        forward_only: bool,
    ) -> ForwardBackwardResult:
        call = self._prepare(
            ForwardBackwardCall(model_id, data, loss_fn, loss_fn_config, forward_only)
        )
        return self._run_alone(call)

    def forward_backward_many(
        self, calls: list[ForwardBackwardCall]
    ) -> list[ForwardBackwardResult | Exception]:
        """Calls on one base (forward or training alike) share one decoder forward with per-row
        adapters (`AdapterHost.per_row`); every other call runs alone. A call that fails its own
        checks fails alone."""
        outcomes: dict[int, _Outcome] = {}
        groups: dict[tuple[int, bool], list[tuple[int, _Prepared]]] = {}
        for index, call in enumerate(calls):
            try:
                prepared = self._prepare(call)
            except Exception as exc:
                outcomes[index] = exc
                continue
            model = prepared.model
            # A call that cannot share gets a key of its own (negative: never a host's id).
            key = (
                (id(model.host), call.forward_only)
                if model.host.mixable(model.slot)
                else (-1 - index, False)
            )
            groups.setdefault(key, []).append((index, prepared))
        for members in groups.values():
            for (index, _), outcome in zip(
                members, self._run_group([p for _, p in members]), strict=True
            ):
                outcomes[index] = outcome
        return [outcomes[index] for index in range(len(calls))]

    def _prepare(self, call: ForwardBackwardCall) -> _Prepared:
        model = self._model(call.model_id)
        definition = loss_def(call.loss_fn)
        batch = pad_batch(
            call.data,
            definition.inputs,
            OPTIONAL_INPUTS,
            model.base.vocab_size,
            model.base.info.max_context_length,
            self.device,
        )
        return _Prepared(call, model, definition, batch)

    def _run_alone(self, call: _Prepared) -> ForwardBackwardResult:
        model, batch = call.model, call.batch
        model.host.activate(model.slot)
        with _grad_mode(call.call.forward_only):
            logprobs, _ = target_logprobs(
                model.base.model,
                batch.tokens,
                batch.inputs["target_tokens"],
                batch.mask,
                self.precision,
            )
            loss = call.definition.fn(
                logprobs, batch.inputs, batch.mask, call.call.loss_fn_config or {}
            )
        if not call.call.forward_only:
            loss.backward()
        return _result(batch, logprobs, loss)

    def _run_group(self, group: list[_Prepared]) -> list[_Outcome]:
        if len(group) > 1:
            # The shared forward itself (e.g. out of memory): no gradient was touched yet.
            try:
                scored = self._score_together(group)
            except Exception:
                log.warning(
                    "a shared forward of %d calls failed; running them one at a time",
                    len(group),
                    exc_info=True,
                )
            else:
                return self._backward_together(group, scored)
        outcomes: list[_Outcome] = []
        for call in group:
            try:
                outcomes.append(self._run_alone(call))
            except Exception as exc:
                outcomes.append(exc)
        return outcomes

    def _score_together(self, group: list[_Prepared]) -> list[_Scored]:
        """One decoder forward over every call's rows (right-padded to the widest), then each
        call's logprobs and loss from its own rows; a call whose loss fails gets its error."""
        first = group[0].model
        # The others are made trainable here: per_row ignores the active one.
        first.host.activate(first.slot)
        forward_only = group[0].call.forward_only
        if not forward_only:
            for call in group:
                for param in call.model.optimizer.params:
                    param.requires_grad_(True)
        width = max(call.batch.tokens.shape[1] for call in group)
        tokens = torch.cat(
            [F.pad(call.batch.tokens, (0, width - call.batch.tokens.shape[1])) for call in group]
        )
        spans = [(call.model.slot, len(call.batch.lengths)) for call in group]
        scored: list[_Scored] = []
        with _grad_mode(forward_only), first.host.per_row(spans) as rows:
            hidden = decoder_hidden(first.base.model, tokens, self.precision)
            start = 0
            for call in group:
                batch, count = call.batch, len(call.batch.lengths)
                # The output projection sees one call's positions at a time.
                rows.only(call.model.slot)
                try:
                    logprobs, _ = score_hidden(
                        first.base.model,
                        hidden[start : start + count, : batch.tokens.shape[1]],
                        batch.inputs["target_tokens"],
                        batch.mask,
                        self.precision,
                    )
                    loss = call.definition.fn(
                        logprobs, batch.inputs, batch.mask, call.call.loss_fn_config or {}
                    )
                    scored.append((logprobs, loss))
                except Exception as exc:
                    scored.append(exc)
                start += count
        return scored

    def _backward_together(self, group: list[_Prepared], scored: list[_Scored]) -> list[_Outcome]:
        """One backward of the summed losses: rows never mix in a decoder, so each adapter's
        gradient is that of its own call's loss, accumulated into its own `.grad`."""
        losses = [outcome[1] for outcome in scored if not isinstance(outcome, Exception)]
        if losses and not group[0].call.forward_only:
            try:
                torch.stack(losses).sum().backward()
            except Exception as exc:
                return [exc for _ in group]
        return [
            outcome if isinstance(outcome, Exception) else _result(call.batch, *outcome)
            for call, outcome in zip(group, scored, strict=True)
        ]

    def optim_step(self, model_id: str, params: AdamStep) -> dict[str, float]:
        return self._model(model_id).optimizer.step(params)

    # --- checkpoints --------------------------------------------------------------------
    def save_training_state(self, model_id: str, directory: Path) -> None:
        model = self._model(model_id)
        self._write(model, Path(directory), model.optimizer.export_state(model.key_of))

    def save_sampler_weights(self, model_id: str, directory: Path) -> None:
        self._write(self._model(model_id), Path(directory), None)

    def _write(
        self, model: TrainingAdapter, directory: Path, optimizer: dict[str, torch.Tensor] | None
    ) -> None:
        checkpoint_io.write_adapter(
            directory,
            model.base.info.name,
            model.spec,
            model.host.config(model.slot),
            model.host.state_dict(model.slot),
            optimizer,
        )

    def load_training_state(
        self, model_id: str, directory: Path, with_optimizer: bool
    ) -> LoraSettings:
        files = checkpoint_io.read_adapter(Path(directory), with_optimizer)
        base, host = self._base_and_host(files.base_model)
        model = self._create(model_id, base, host, files.spec, files.config)
        try:
            host.load_state_dict(model.slot, files.weights)
            if files.optimizer is not None:
                model.optimizer.import_state(files.optimizer, model.key_of)
        except Exception:
            self.unload_model(model_id)
            raise
        return files.spec

    # --- sampling -----------------------------------------------------------------------
    def snapshot_for_sampling(self, model_id: str) -> str:
        model = self._model(model_id)
        return self.samplers.add_adapter(
            SamplerRef(model.base.info.name, None),
            model.host.config(model.slot),
            model.host.state_dict(model.slot),
        )

    def live_sampler(self, model_id: str) -> str:
        self._model(model_id)
        return f"{LIVE_PREFIX}{model_id}"

    def _live_ref(self, key: str) -> SamplerRef | None:
        """The training adapter a live sampler key follows (resolved on every batch, so a model
        reloaded into a new slot is followed too); None for every other key."""
        if not key.startswith(LIVE_PREFIX):
            return None
        model = self._models.get(key.removeprefix(LIVE_PREFIX))
        if model is None:
            raise NotFoundError(f"inflight sampler {key!r}: its training client was unloaded")
        return SamplerRef(model.base.info.name, model.slot)

    def load_sampler(self, directory: Path) -> str:
        return self.samplers.load(Path(directory))

    def sample(
        self, requests: list[SampleRequest], on_result: ResultHook | None = None
    ) -> list[SampleResult]:
        return self.samplers.sample(requests, on_result)
