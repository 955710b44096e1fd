"""REST listings for `tinker.RestClient`: capabilities, training runs, checkpoints, weights info.

Built from the on-disk store, so everything saved before an engine restart is listed after
it; expired checkpoints are left out, the others carry their `expires_at`. Response shapes are
the SDK's pydantic models (`TrainingRun`, `Checkpoint`, `Cursor`, ...) dumped to JSON, so they
validate on the client by construction.
"""

from __future__ import annotations

from tinker.types import Checkpoint, Cursor, TrainingRun
from tinker.types.weights_info_response import WeightsInfoResponse

from tinker_chief.engine.server.store import (
    CHECKPOINT_TYPE,
    CheckpointStore,
    RunRecord,
    StoredCheckpoint,
)
from tinker_chief.models import public_model_name

OWNER = "local"


def capabilities(models: list[tuple[str, int | None]]) -> dict:
    return {
        "supported_models": [
            {"model_name": name, "max_context_length": ctx, "trainable": True, "sampleable": True}
            for name, ctx in models
        ]
    }


def checkpoint_json(record: StoredCheckpoint) -> dict:
    return Checkpoint(
        checkpoint_id=record.checkpoint_id,
        checkpoint_type=CHECKPOINT_TYPE[record.kind],
        time=record.created,
        tinker_path=record.tinker_path,
        size_bytes=record.size_bytes,
        user_metadata=record.user_metadata,
        expires_at=record.expires_at,
    ).model_dump(mode="json")


def training_run_json(store: CheckpointStore, run: RunRecord) -> dict:
    checkpoints = store.list_checkpoints(run.run_id)
    last = {
        kind: next((c for c in reversed(checkpoints) if c.kind == kind), None)
        for kind in CHECKPOINT_TYPE
    }
    return TrainingRun(
        training_run_id=run.run_id,
        base_model=public_model_name(run.base_model),
        model_owner=OWNER,
        is_lora=True,
        lora_rank=run.lora.get("rank"),
        last_request_time=run.last_request_time,
        last_checkpoint=checkpoint_json(last["weights"]) if last["weights"] else None,
        last_sampler_checkpoint=checkpoint_json(last["sampler_weights"])
        if last["sampler_weights"]
        else None,
        user_metadata=run.user_metadata,
    ).model_dump(mode="json")


def training_runs(store: CheckpointStore, limit: int, offset: int) -> dict:
    runs = store.list_runs()
    page = runs[offset : offset + limit]
    return {
        "training_runs": [training_run_json(store, r) for r in page],
        "cursor": Cursor(offset=offset, limit=limit, total_count=len(runs)).model_dump(),
    }


def run_checkpoints(store: CheckpointStore, run_id: str) -> dict:
    store.get_run(run_id)  # 404 for an unknown run rather than an empty list
    return {"checkpoints": [checkpoint_json(c) for c in store.list_checkpoints(run_id)]}


def user_checkpoints(store: CheckpointStore, limit: int, offset: int) -> dict:
    records = store.list_all_checkpoints()
    return {
        "checkpoints": [checkpoint_json(c) for c in records[offset : offset + limit]],
        "cursor": Cursor(offset=offset, limit=limit, total_count=len(records)).model_dump(),
    }


def weights_info(store: CheckpointStore, tinker_path: str) -> dict:
    record, _ = store.resolve(tinker_path)
    run = store.get_run(record.run_id)
    lora = run.lora_settings()
    return WeightsInfoResponse(
        base_model=public_model_name(run.base_model),
        is_lora=True,
        lora_rank=lora.rank,
        train_unembed=lora.train_unembed,
        train_mlp=lora.train_mlp,
        train_attn=lora.train_attn,
    ).model_dump(mode="json")
