"""Wire formats <-> backend dataclasses.

Decodes the SDK's protobuf `ForwardBackwardRequest` (the SDK's own generated module,
`tinker.proto.tinker_public_pb2`, so the schema cannot drift) and its JSON `asample` body
(validated with the SDK's pydantic `SampleRequest`) into `engine/backend.py` types, and
encodes results as the protobuf `ForwardBackwardOutput` / `SampleResponse` the SDK requires.
Every decoding error names the datum, field and what was expected.
"""

from __future__ import annotations

import math

import numpy as np
from tinker.proto import tinker_public_pb2 as pb
from tinker.types import EncodedTextChunk
from tinker.types.sample_request import SampleRequest as WireSampleRequest

from tinker_chief.engine.backend import (
    DatumArrays,
    ForwardBackwardCall,
    ForwardBackwardResult,
    SampleRequest,
    SampleResult,
    SamplingSettings,
)
from tinker_chief.engine.server.http_errors import InvalidRequestError, UnsupportedError, shown

SUPPORTED_LOSSES = ("cross_entropy", "importance_sampling", "ppo", "cispo", "dro", "gspo")
_RL_INPUTS = ("target_tokens", "logprobs", "advantages")
REQUIRED_INPUTS: dict[str, tuple[str, ...]] = {
    "cross_entropy": ("target_tokens", "weights"),
    "importance_sampling": _RL_INPUTS,
    "ppo": _RL_INPUTS,
    "cispo": _RL_INPUTS,
    "dro": _RL_INPUTS,
    "gspo": _RL_INPUTS,
}
_NUMPY_OF = {pb.DTYPE_FLOAT32: np.float32, pb.DTYPE_INT64: np.int64, pb.DTYPE_INT32: np.int32}
_PROTO_OF = {
    np.dtype(np.float32): pb.DTYPE_FLOAT32,
    np.dtype(np.int64): pb.DTYPE_INT64,
    np.dtype(np.int32): pb.DTYPE_INT32,
}
DEFAULT_MAX_TOKENS = 128
MAX_NUM_SAMPLES = 256
# topk_prompt_logprobs feeds top-K distillation; the cookbook recommends K=20 (its SDFT results
# show K=20 matches full-vocabulary KL), so 100 leaves room while keeping a response small.
MAX_TOPK_PROMPT_LOGPROBS = 100
# What one request may make the engine hold (see docs/BENCHMARKS.md, bench/engine_limits.py):
# sampled tokens (num_samples x max_tokens; 256 x 4096) and top-k cells (prompt positions x k).
MAX_SAMPLED_TOKENS = 1 << 20
MAX_TOPK_CELLS = 1 << 20
MAX_SEED = (1 << 64) - 1  # the SDK's protobuf SamplingParams.seed is a uint64
# Sampling runs on fp32 logits: a positive temperature below 1e-6 is greedy in all but name
# (1e-300 overflowed the scaled logits to inf), and so is a top_p below 1e-6 (1e-300 rounds to 0
# in fp32, which dropped every token); above 100 every token is about equally likely.
MIN_TEMPERATURE, MAX_TEMPERATURE = 1e-6, 100.0
MIN_TOP_P = 1e-6
_EMPTY_TOPK_LOGPROB = -99999.0


# -- forward_backward --------------------------------------------------------------------------


def decode_forward_backward(body: bytes) -> pb.ForwardBackwardRequest:
    """Parse the protobuf body (addressing only; `forward_backward_call` checks the rest)."""
    message = pb.ForwardBackwardRequest()
    try:
        message.ParseFromString(body)
    except Exception as exc:  # protobuf raises DecodeError and friends
        raise InvalidRequestError(
            "forward_backward: body is not a valid tinker_public.ForwardBackwardRequest protobuf "
            f"({exc})"
        ) from None
    if not message.model_id:
        raise InvalidRequestError("forward_backward: field model_id is missing")
    return message


def forward_backward_call(message: pb.ForwardBackwardRequest) -> ForwardBackwardCall:
    loss_fn = message.loss_fn or "cross_entropy"
    if loss_fn not in SUPPORTED_LOSSES:
        if loss_fn in ("custom", "stable_reinforce"):
            raise UnsupportedError(f"loss_fn {loss_fn!r}")
        raise InvalidRequestError(
            f"forward_backward: unknown loss_fn {loss_fn!r}; "
            f"expected one of {', '.join(SUPPORTED_LOSSES)}"
        )
    if not message.data:
        raise InvalidRequestError(
            "forward_backward: field data is empty (expected at least one datum)"
        )
    data = [_parse_datum(i, d, loss_fn) for i, d in enumerate(message.data)]
    return ForwardBackwardCall(
        model_id=message.model_id,
        data=data,
        loss_fn=loss_fn,
        loss_fn_config=_loss_config(message),
        forward_only=message.forward_only,
    )


def _loss_config(message: pb.ForwardBackwardRequest) -> dict[str, float | str]:
    # v2 carries strings too and is what current SDKs fill; the legacy map mirrors its numbers.
    if message.loss_fn_config_v2:
        return {
            k: (v.text if v.WhichOneof("value") == "text" else v.number)
            for k, v in message.loss_fn_config_v2.items()
        }
    return {k: float(v) for k, v in message.loss_fn_config.items()}


def _parse_datum(index: int, datum: pb.Datum, loss_fn: str) -> DatumArrays:
    where = f"forward_backward: data[{index}]"
    pieces = []
    for chunk in datum.model_input:
        kind = chunk.WhichOneof("chunk")
        if kind != "encoded_text":
            raise UnsupportedError(f"{where}: model_input chunks of type {kind!r} (images, audio)")
        if len(chunk.encoded_text.tokens) % 4:
            raise InvalidRequestError(
                f"{where}: encoded_text.tokens is not a whole number of int32 values"
            )
        pieces.append(np.frombuffer(chunk.encoded_text.tokens, dtype="<i4"))
    tokens = np.concatenate(pieces).astype(np.int64) if pieces else np.zeros(0, np.int64)
    if tokens.size == 0:
        raise InvalidRequestError(f"{where}: model_input is empty (expected at least one token)")
    inputs = {
        name: _tensor(f"{where}.loss_fn_inputs[{name!r}]", t)
        for name, t in datum.loss_fn_inputs.items()
    }
    missing = [k for k in REQUIRED_INPUTS[loss_fn] if k not in inputs]
    if missing:
        raise InvalidRequestError(
            f"{where}: loss_fn_inputs is missing {', '.join(missing)} "
            f"({loss_fn} needs {', '.join(REQUIRED_INPUTS[loss_fn])})"
        )
    for name, array in inputs.items():
        if array.ndim == 0 or array.shape[0] != tokens.size:
            raise InvalidRequestError(
                f"{where}: loss_fn_inputs[{name!r}] has shape {list(array.shape)}; expected its "
                f"first dimension to equal the model_input length {tokens.size}"
            )
    return DatumArrays(tokens=tokens, loss_fn_inputs=inputs)


def _tensor(where: str, tensor: pb.Tensor) -> np.ndarray:
    dtype = _NUMPY_OF.get(tensor.dtype)
    if dtype is None:
        raise InvalidRequestError(
            f"{where}: unsupported dtype {tensor.dtype}; expected float32 or int64"
        )
    shape = tuple(int(s) for s in tensor.shape)
    try:
        if tensor.WhichOneof("encoding") == "sparse_csr":
            array = _dense_from_csr(tensor.sparse_csr, dtype, shape)
        else:
            array = np.frombuffer(tensor.dense, dtype=dtype)
            array = array.reshape(shape) if shape else array
    except ValueError as exc:
        raise InvalidRequestError(
            f"{where}: data does not match shape {list(shape)} ({exc})"
        ) from None
    return array.astype(np.int64 if dtype != np.float32 else np.float32)


def _dense_from_csr(csr: pb.SparseCsr, dtype: type, shape: tuple[int, ...]) -> np.ndarray:
    if len(shape) != 2:
        raise ValueError("sparse tensors must be 2-D")
    values: np.ndarray = np.frombuffer(csr.values, dtype=dtype)
    crow = np.frombuffer(csr.crow_indices, dtype=np.int64)
    cols = np.frombuffer(csr.col_indices, dtype=np.int64)
    dense: np.ndarray = np.zeros(shape, dtype=dtype)
    for row in range(shape[0]):
        lo, hi = int(crow[row]), int(crow[row + 1])
        dense[row, cols[lo:hi]] = values[lo:hi]
    return dense


def encode_forward_backward(result: ForwardBackwardResult) -> bytes:
    output = pb.ForwardBackwardOutput(loss_fn_output_type="ArrayRecord")
    for key, value in result.metrics.items():
        output.metrics[key] = float(value)
    record = output.loss_fn_outputs.add(type_tag="ArrayRecord", num_datums=len(result.outputs))
    names = list(result.outputs[0]) if result.outputs else []
    for name in names:
        arrays = [np.ascontiguousarray(datum[name]) for datum in result.outputs]
        if arrays[0].dtype not in _PROTO_OF:
            arrays = [a.astype(np.float32) for a in arrays]
        batched = record.fields[name]
        batched.dtype = _PROTO_OF[arrays[0].dtype]
        batched.trailing_shape.extend(arrays[0].shape[1:])
        offsets = np.cumsum([0] + [a.nbytes for a in arrays]).astype(np.int64)
        batched.offsets = offsets.tobytes()
        batched.data = b"".join(a.tobytes() for a in arrays)
    return output.SerializeToString()


# -- sampling ----------------------------------------------------------------------------------


def sampling_settings(request: WireSampleRequest, eos_tokens: tuple[int, ...]) -> SamplingSettings:
    params = request.sampling_params
    stop = params.stop
    strings: tuple[str, ...] = ()
    tokens: tuple[int, ...] = eos_tokens
    if isinstance(stop, str):
        strings = (stop,)
    elif stop is not None:
        items = list(stop)
        if all(isinstance(s, str) for s in items):
            strings = tuple(s for s in items if isinstance(s, str))
        elif all(isinstance(s, int) and not isinstance(s, bool) for s in items):
            tokens = (
                tuple(dict.fromkeys([*(s for s in items if isinstance(s, int)), *eos_tokens]))
                if items
                else ()
            )
        else:
            raise InvalidRequestError(
                "asample: sampling_params.stop must be a string, a list of strings or a list of "
                "token ids, not a mix"
            )
        if not items:
            tokens = ()  # stop=[] disables every stop condition, EOS included
    max_tokens = DEFAULT_MAX_TOKENS if params.max_tokens is None else params.max_tokens
    _check(max_tokens >= 1, f"sampling_params.max_tokens must be at least 1, got {max_tokens}")
    _check(
        params.temperature == 0 or MIN_TEMPERATURE <= params.temperature <= MAX_TEMPERATURE,
        "sampling_params.temperature must be 0 (greedy) or in "
        f"[{MIN_TEMPERATURE:g}, {MAX_TEMPERATURE:g}], got {params.temperature}",
    )
    _check(
        MIN_TOP_P <= params.top_p <= 1,
        f"sampling_params.top_p must be in [{MIN_TOP_P:g}, 1], got {params.top_p}",
    )
    _check(
        params.top_k == -1 or params.top_k >= 1,
        f"sampling_params.top_k must be -1 or >= 1, got {params.top_k}",
    )
    _check(
        params.seed is None or 0 <= params.seed <= MAX_SEED,
        f"sampling_params.seed must be between 0 and {MAX_SEED} (2**64 - 1), "
        f"got {shown(params.seed)}",
    )
    return SamplingSettings(
        max_tokens=max_tokens,
        temperature=float(params.temperature),
        top_p=float(params.top_p),
        top_k=int(params.top_k),
        seed=params.seed,
        stop_strings=strings,
        stop_tokens=tokens,
    )


def sample_request(
    request: WireSampleRequest,
    sampler: str,
    eos_tokens: tuple[int, ...],
    vocab_size: int | None = None,
) -> SampleRequest:
    for field, unsupported in (
        ("topk_sample_logprobs", request.topk_sample_logprobs > 0),
        ("target_prompt_logprobs", request.target_prompt_logprobs is not None),
        ("prompt_alt_tokens_k", request.prompt_alt_tokens_k > 0),
        ("record_stability_info", bool(request.record_stability_info)),
    ):
        if unsupported:
            raise UnsupportedError(f"asample: {field}")
    _check(
        1 <= request.num_samples <= MAX_NUM_SAMPLES,
        f"num_samples must be between 1 and {MAX_NUM_SAMPLES}, got {request.num_samples}",
    )
    _check_topk(request.topk_prompt_logprobs, vocab_size)
    prompt = prompt_tokens(request)
    settings = sampling_settings(request, eos_tokens)
    if vocab_size is not None:
        _check_stop_tokens(settings.stop_tokens, vocab_size)
    _check_last_n(request.prompt_logprobs_last_n, len(prompt))
    _check_budget(request, len(prompt), settings.max_tokens)
    want_prompt_lp = bool(request.prompt_logprobs) or request.topk_prompt_logprobs > 0
    return SampleRequest(
        sampler=sampler,
        prompt=prompt,
        num_samples=request.num_samples,
        settings=settings,
        prompt_logprobs=want_prompt_lp,
        topk_prompt_logprobs=request.topk_prompt_logprobs,
    )


def _check_topk(k: int, vocab_size: int | None) -> None:
    limit = min(MAX_TOPK_PROMPT_LOGPROBS, vocab_size or MAX_TOPK_PROMPT_LOGPROBS)
    why = "the engine's maximum" + (
        " and the vocabulary size" if limit < MAX_TOPK_PROMPT_LOGPROBS else ""
    )
    _check(
        0 <= k <= limit,
        f"asample: topk_prompt_logprobs must be between 0 and {limit} ({why}), got {shown(k)}",
    )


def _check_stop_tokens(tokens: tuple[int, ...], vocab_size: int) -> None:
    bad = next((token for token in tokens if not 0 <= token < vocab_size), None)
    _check(
        bad is None,
        f"asample: sampling_params.stop: token id {shown(bad)} is outside the vocabulary "
        f"(expected 0 <= id < {vocab_size})",
    )


def _check_last_n(last_n: int | None, prompt_length: int) -> None:
    _check(
        last_n is None or 1 <= last_n <= prompt_length - 1,
        "asample: prompt_logprobs_last_n must be between 1 and the prompt length - 1 "
        f"({prompt_length - 1}), got {shown(last_n)}",
    )


def _check_budget(request: WireSampleRequest, prompt_length: int, max_tokens: int) -> None:
    """Refuse, before anything is allocated, a request whose results would exceed one request's
    share."""
    sampled = request.num_samples * max_tokens
    _check(
        sampled <= MAX_SAMPLED_TOKENS,
        f"asample: num_samples x max_tokens = {request.num_samples} x {shown(max_tokens)} = "
        f"{shown(sampled)} sampled tokens exceeds the engine's limit of {MAX_SAMPLED_TOKENS} per "
        "request "
        "(split it into several requests)",
    )
    cells = (prompt_length - 1) * request.topk_prompt_logprobs
    _check(
        cells <= MAX_TOPK_CELLS,
        f"asample: topk_prompt_logprobs x scored prompt tokens = {request.topk_prompt_logprobs} x "
        f"{prompt_length - 1} = {cells} exceeds the engine's limit of {MAX_TOPK_CELLS} top-k "
        "entries per request (lower topk_prompt_logprobs or split the prompt)",
    )


def prompt_tokens(request: WireSampleRequest) -> tuple[int, ...]:
    tokens: list[int] = []
    for chunk in request.prompt.chunks:
        if not isinstance(chunk, EncodedTextChunk):
            raise UnsupportedError(
                f"asample: prompt chunks of type {getattr(chunk, 'type', '?')!r} (images, audio)"
            )
        tokens.extend(int(t) for t in chunk.tokens)
    _check(bool(tokens), "asample: prompt is empty (expected at least one token)")
    return tuple(tokens)


def encode_sample(result: SampleResult, request: WireSampleRequest) -> bytes:
    response = pb.SampleResponse()
    for seq in result.sequences:
        response.sequences.add(
            stop_reason=pb.STOP_REASON_STOP if seq.stop_reason == "stop" else pb.STOP_REASON_LENGTH,
            tokens=np.asarray(seq.tokens, dtype="<i4").tobytes(),
            logprobs=np.asarray(seq.logprobs, dtype="<f4").tobytes(),
        )
    last_n = request.prompt_logprobs_last_n
    if request.prompt_logprobs and result.prompt_logprobs is not None:
        values = [math.nan if v is None else float(v) for v in result.prompt_logprobs]
        response.prompt_logprobs = np.asarray(
            _keep_last(values, last_n, math.nan), dtype="<f4"
        ).tobytes()
    if request.topk_prompt_logprobs > 0 and result.topk_prompt_logprobs is not None:
        rows = _keep_last(result.topk_prompt_logprobs, last_n, None)
        response.topk_prompt_logprobs.CopyFrom(_topk(rows, request.topk_prompt_logprobs))
    return response.SerializeToString()


def _keep_last(values: list, last_n: int | None, blank: object) -> list:
    if last_n is None or last_n >= len(values):
        return list(values)
    return [blank] * (len(values) - last_n) + list(values[len(values) - last_n :])


def _topk(rows: list[list[tuple[int, float]] | None], k: int) -> pb.TopkLogprobs:
    ids = np.zeros((len(rows), k), dtype="<i4")
    lps = np.full((len(rows), k), _EMPTY_TOPK_LOGPROB, dtype="<f4")
    for i, row in enumerate(rows):
        for j, (token, logprob) in enumerate((row or [])[:k]):
            ids[i, j], lps[i, j] = token, logprob
    return pb.TopkLogprobs(token_ids=ids.tobytes(), logprobs=lps.tobytes(), k=k, length=len(rows))


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise InvalidRequestError(message)
