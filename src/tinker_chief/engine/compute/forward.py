"""Padded batches and target-token logprobs: the forward pass shared by training and scoring.

`pad_batch` validates a list of `DatumArrays` (loss inputs present and aligned, token ids in the
vocabulary, lengths within the context) and right-pads them into [B, T] tensors.
`target_logprobs` runs the decoder once and projects only the real positions through the output
embedding, in chunks, taking log-softmax in fp32: the full-vocabulary logits of every padded
position are never materialised at once, which is most of the memory and a large share of the
time of a naive `model(...).logits` on a 49k vocabulary. Right padding means no real token ever
attends to a pad, so the decoder runs with its plain causal mask (SDPA's fast path).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from tinker_chief.engine.backend import DatumArrays, InvalidRequestError
from tinker_chief.engine.compute.devices import Precision

if TYPE_CHECKING:
    from transformers import PreTrainedModel

# The k most likely tokens at each scored position: (log-probabilities, token ids), or None.
TopK = tuple[torch.Tensor, torch.Tensor] | None

CHUNK_TOKENS = 2048  # output-projection rows per chunk: bounds the fp32 logits buffer
# On the CPU a chunk's fp32 logits also stay under glibc's largest heap allocation (its mmap
# threshold tops out at 32 MiB on 64-bit): a larger buffer is mapped fresh, page-faulted in and
# handed back to the kernel on every call. At 2048 rows of a 49k vocabulary (400 MB) that was
# half of a training step in the kernel (bench/engine_train.py on a 2-core EPYC: 6.0 -> 3.2
# s/step, 880k minor page faults per step -> none). CUDA's caching allocator reuses any size.
CPU_CHUNK_BYTES = 24 * 2**20


@dataclass
class PaddedBatch:
    tokens: torch.Tensor  # int64 [B, T]
    mask: torch.Tensor  # float32 [B, T], 1 on real positions
    inputs: dict[str, torch.Tensor]  # each [B, T]; target_tokens int64, the rest float32
    lengths: list[int]


def _check_ids(ids: np.ndarray, vocab: int, where: str) -> None:
    bad = np.flatnonzero((ids < 0) | (ids >= vocab))
    if bad.size:
        position = int(bad[0])
        raise InvalidRequestError(
            f"{where}: token id {int(ids[position])} at position {position} is outside the "
            f"vocabulary (valid ids are 0..{vocab - 1})"
        )


def validate_datum(
    index: int,
    datum: DatumArrays,
    required: Sequence[str],
    optional: Sequence[str],
    vocab: int,
    max_length: int,
) -> None:
    tokens = np.asarray(datum.tokens)
    length = int(tokens.shape[0]) if tokens.ndim == 1 else -1
    if length < 1:
        raise InvalidRequestError(f"datum {index}: model_input must be a non-empty list of tokens")
    if length > max_length:
        raise InvalidRequestError(
            f"datum {index}: length {length} exceeds the model's maximum context length "
            f"{max_length}"
        )
    _check_ids(tokens, vocab, f"datum {index}: model_input")
    for key in required:
        if key not in datum.loss_fn_inputs:
            raise InvalidRequestError(
                f"datum {index}: loss_fn_inputs is missing {key!r} "
                f"(this loss needs {', '.join(required)})"
            )
    for key in (*required, *[k for k in optional if k in datum.loss_fn_inputs]):
        values = np.asarray(datum.loss_fn_inputs[key])
        if values.shape != (length,):
            raise InvalidRequestError(
                f"datum {index}: loss_fn_inputs[{key!r}] has shape {list(values.shape)}, "
                f"expected [{length}] (one value per input token)"
            )
    if "target_tokens" in datum.loss_fn_inputs:
        _check_ids(
            np.asarray(datum.loss_fn_inputs["target_tokens"]),
            vocab,
            f"datum {index}: target_tokens",
        )


def pad_batch(
    data: Sequence[DatumArrays],
    required: Sequence[str],
    optional: Sequence[str],
    vocab: int,
    max_length: int,
    device: str,
) -> PaddedBatch:
    if not data:
        raise InvalidRequestError("the request has no data: send at least one datum")
    for index, datum in enumerate(data):
        validate_datum(index, datum, required, optional, vocab, max_length)
    lengths = [int(np.asarray(d.tokens).shape[0]) for d in data]
    width = max(lengths)
    keys = [*required, *[k for k in optional if all(k in d.loss_fn_inputs for d in data)]]
    tokens = np.zeros((len(data), width), dtype=np.int64)
    mask = np.zeros((len(data), width), dtype=np.float32)
    arrays = {
        k: np.zeros((len(data), width), np.int64 if k == "target_tokens" else np.float32)
        for k in keys
    }
    for row, (datum, length) in enumerate(zip(data, lengths)):
        tokens[row, :length] = datum.tokens
        mask[row, :length] = 1.0
        for key in keys:
            arrays[key][row, :length] = datum.loss_fn_inputs[key]
    return PaddedBatch(
        tokens=torch.from_numpy(tokens).to(device),
        mask=torch.from_numpy(mask).to(device),
        inputs={k: torch.from_numpy(v).to(device) for k, v in arrays.items()},
        lengths=lengths,
    )


def decoder_of(causal_lm: PreTrainedModel) -> torch.nn.Module:
    """The transformer body (everything before the output embedding)."""
    return getattr(causal_lm, causal_lm.base_model_prefix)


def _project(causal_lm: PreTrainedModel, hidden: torch.Tensor) -> torch.Tensor:
    """fp32 logits for a chunk of hidden states, with the model's logit soft-cap if it has one."""
    logits = causal_lm.get_output_embeddings()(hidden).float()
    cap = getattr(causal_lm.config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits


def target_logprobs(
    causal_lm: PreTrainedModel,
    tokens: torch.Tensor,
    targets: torch.Tensor,
    mask: torch.Tensor,
    precision: Precision,
    topk: int = 0,
) -> tuple[torch.Tensor, TopK]:
    """logprob of targets[b, t] given tokens[b, :t+1], fp32 [B, T], zero where mask is 0.

    With `topk` > 0 also returns (values, ids) of the k most likely tokens at each real position,
    flattened in mask order; otherwise None.
    """
    return score_hidden(
        causal_lm, decoder_hidden(causal_lm, tokens, precision), targets, mask, precision, topk
    )


def decoder_hidden(
    causal_lm: PreTrainedModel, tokens: torch.Tensor, precision: Precision
) -> torch.Tensor:
    """The decoder's last hidden states [B, T, H] of right-padded `tokens` (plain causal mask)."""
    with precision.autocast():
        return decoder_of(causal_lm)(input_ids=tokens, use_cache=False).last_hidden_state


def prompt_scores(
    causal_lm: PreTrainedModel,
    prompts: torch.Tensor,
    lengths: list[int],
    precision: Precision,
    topk: int = 0,
) -> tuple[torch.Tensor, TopK, torch.Tensor]:
    """Prompt logprobs of right-padded `prompts` [B, T] (as `target_logprobs` gives them for
    predicting prompt[1:] from prompt[:-1]) plus the fp32 logits after each whole prompt [B, V]:
    one forward both scores a prompt and picks the first token generated after it."""
    hidden = decoder_hidden(causal_lm, prompts, precision)
    width = prompts.shape[1] - 1
    mask = (
        torch.arange(width, device=prompts.device)[None, :]
        < torch.tensor(lengths, device=prompts.device)[:, None] - 1
    ).float()
    logprobs, top = score_hidden(causal_lm, hidden[:, :-1], prompts[:, 1:], mask, precision, topk)
    last = hidden[
        torch.arange(len(lengths), device=prompts.device),
        torch.tensor(lengths, device=prompts.device) - 1,
    ]
    with precision.autocast():
        return logprobs, top, _project(causal_lm, last)


def chunk_rows(vocab: int, device: torch.device) -> int:
    """Output-projection rows per chunk for a `vocab`-wide projection on `device`."""
    if device.type != "cpu":
        return CHUNK_TOKENS
    return max(1, min(CHUNK_TOKENS, CPU_CHUNK_BYTES // (4 * vocab)))


def score_hidden(
    causal_lm: PreTrainedModel,
    hidden: torch.Tensor,
    targets: torch.Tensor,
    mask: torch.Tensor,
    precision: Precision,
    topk: int = 0,
) -> tuple[torch.Tensor, TopK]:
    """`target_logprobs` from hidden states the decoder already computed."""
    real = mask.bool()
    flat_hidden, flat_targets = hidden[real], targets[real]
    pieces, tops = [], []
    rows = chunk_rows(causal_lm.get_output_embeddings().out_features, hidden.device)
    for start in range(0, flat_hidden.shape[0], rows):
        with precision.autocast():
            logits = _project(causal_lm, flat_hidden[start : start + rows])
        picked = logits.gather(-1, flat_targets[start : start + rows, None])[:, 0]
        normaliser = torch.logsumexp(logits, dim=-1)
        pieces.append(picked - normaliser)
        if topk:
            values, ids = logits.topk(topk, dim=-1)
            tops.append((values - normaliser[:, None], ids))
    out = torch.zeros(targets.shape, dtype=torch.float32, device=targets.device)
    out = out.masked_scatter(real, torch.cat(pieces)) if pieces else out
    top = (torch.cat([v for v, _ in tops]), torch.cat([i for _, i in tops])) if topk else None
    return out, top
