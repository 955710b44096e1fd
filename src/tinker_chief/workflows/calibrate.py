"""`chief plan --calibrate`: measure the local engine's training speed for a model on this machine.

A short probe through the SDK, as a run trains: one LoRA training client at the project's rank
and placement, one warm-up step, then `PROBE_STEPS` timed `forward_backward` + `optim_step`
steps on a batch of `PROBE_BATCH` sequences of `PROBE_LENGTH` tokens (the conditions the
shipped throughput table was measured under). The trained tokens per second are cached per
machine and model (`planning.calibration.save_probe`), where `chief plan` finds them. It runs
only when asked: it starts a local engine and takes seconds to minutes on a CPU.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from tinker_chief.planning.calibration import Measured, cached_probe, machine_id, save_probe
from tinker_chief.training.steps import submit_and_wait
from tinker_chief.workspace import Workspace

if TYPE_CHECKING:
    import tinker
    from tinker_cookbook.tokenizer_utils import Tokenizer

PROBE_STEPS = 3
PROBE_BATCH = 8
PROBE_LENGTH = 128


def _batch(tokenizer: Tokenizer) -> list[tinker.Datum]:
    """PROBE_BATCH copies of a PROBE_LENGTH-token text, every token trained."""
    import tinker

    text = "The quick brown fox jumps over the lazy dog while the engine measures its speed. "
    sentence = list(tokenizer.encode(text, add_special_tokens=False))
    ids = (sentence * (PROBE_LENGTH // len(sentence) + 2))[: PROBE_LENGTH + 1]
    n = len(ids) - 1
    datum = tinker.Datum(
        model_input=tinker.ModelInput.from_ints(ids[:-1]),
        loss_fn_inputs={
            "target_tokens": tinker.TensorData(data=ids[1:], dtype="int64", shape=[n]),
            "weights": tinker.TensorData(data=[1.0] * n, dtype="float32", shape=[n]),
        },
    )
    return [datum] * PROBE_BATCH


def probe_throughput(project: Workspace) -> Measured:
    """Measure, cache and return the local engine's training tokens/s for the project's model
    here."""
    import tinker

    from tinker_chief.models import load_tokenizer

    cfg = project.config
    batch = _batch(load_tokenizer(cfg.base_model))
    adam = tinker.AdamParams(learning_rate=1e-5)
    with project.connect(project.local_engine_choice()) as connection:
        connection.check_serves(cfg.base_model)
        client = (
            connection.service_client()
            .create_lora_training_client(
                base_model=cfg.base_model,
                rank=cfg.lora.rank,
                seed=cfg.seed,
                train_mlp=cfg.lora.train_mlp,
                train_attn=cfg.lora.train_attn,
                train_unembed=cfg.lora.train_unembed,
            )
            .result()
        )
        seconds = 0.0
        for step in range(PROBE_STEPS + 1):
            started = time.perf_counter()
            submit_and_wait(client, batch, adam, "cross_entropy")
            seconds += (time.perf_counter() - started) if step else 0.0  # step 0 is the warm-up
        precision = connection.engine_precision  # asked while the engine runs, after it chose
    tokens = PROBE_STEPS * sum(d.model_input.length for d in batch)
    conditions = (
        f"LoRA r={cfg.lora.rank}, batch {PROBE_BATCH} x {PROBE_LENGTH} tokens, {PROBE_STEPS} timed "
        f"steps after 1 warm-up, {connection.where}"
    )
    save_probe(cfg.base_model, tokens / seconds, conditions, precision)
    measured = cached_probe(cfg.base_model, machine_id())
    assert measured is not None  # just written
    return measured
