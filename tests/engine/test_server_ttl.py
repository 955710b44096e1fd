"""Checkpoint TTLs: recorded, listed, changed over REST, expired, deleted unless in use.

Time never passes in these tests. The store tests drive `CheckpointStore` with a fake clock;
the engine tests make a checkpoint's `expires_at` lie in the past by rewriting its metadata
JSON (the documented storage format), which is what the engine's clock passing it looks like,
then watch the running engine (its deletion pass every 0.2 s) or a restarted one react.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import tinker
from tinker import types

from tinker_chief.engine.server import store as store_module
from tinker_chief.engine.server.http_errors import InvalidRequestError, NotFoundError
from tinker_chief.engine.server.store import CheckpointExpiredError, CheckpointStore, RunRecord

from server_support import TINY

WEEK, HOUR = 604800, 3600
GREEDY = types.SamplingParams(max_tokens=4, temperature=0, stop=[])


# -- the store, with a fake clock ---------------------------------------------------------------


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _store(tmp_path: Path) -> tuple[CheckpointStore, Clock]:
    clock = Clock()
    store = CheckpointStore(tmp_path / "state", clock)
    store.save_run(RunRecord("run-1", TINY, {"rank": 2}))
    return store, clock


def _save(store: CheckpointStore, name: str, ttl: int | None = HOUR, kind: str = "weights") -> str:
    write = lambda directory: (directory / "adapter_model.safetensors").write_bytes(b"x")  # noqa: E731
    return store.save_checkpoint("run-1", kind, name, False, write, None, ttl).tinker_path  # type: ignore[arg-type]


def _directory(store: CheckpointStore, path: str) -> Path:
    run_id, kind, name = path.removeprefix("tinker://").split("/")
    return store.root / "runs" / run_id / kind / name


def test_store_expires_deletes_and_remembers(tmp_path):
    store, clock = _store(tmp_path)
    path = _save(store, "step-1")
    record, _ = store.resolve(path)
    assert record.expires_at == datetime.fromtimestamp(clock.now + HOUR, UTC).isoformat()

    clock.now += HOUR - 1
    assert [c.tinker_path for c in store.list_checkpoints("run-1")] == [path]
    assert store.delete_expired() == []

    clock.now += 1  # the expiry instant itself counts as expired
    with pytest.raises(
        CheckpointExpiredError, match=re.escape(f"checkpoint {path} expired at {record.expires_at}")
    ):
        store.resolve(path)
    with pytest.raises(CheckpointExpiredError):
        store.lease(path)
    assert store.list_checkpoints("run-1") == []
    assert _directory(store, path).is_dir()  # refused at once, deleted by the next pass

    assert [c.tinker_path for c in store.delete_expired()] == [path]
    assert not _directory(store, path).exists()
    assert not _directory(store, path).with_name("step-1.json").exists()
    with pytest.raises(
        CheckpointExpiredError, match=re.escape(f"expired at {record.expires_at} and was deleted")
    ):
        store.resolve(path)

    again = _save(store, "step-1", ttl=None)  # a new checkpoint under the same name never expires
    assert store.resolve(again)[0].expires_at is None
    store.delete("run-1", "weights/step-1")
    with pytest.raises(NotFoundError, match="unknown checkpoint") as deleted:
        store.resolve(again)
    assert not isinstance(deleted.value, CheckpointExpiredError)


def test_store_never_deletes_a_checkpoint_in_use(tmp_path):
    store, clock = _store(tmp_path)
    leased_path, held_path = _save(store, "leased"), _save(store, "held", kind="sampler_weights")
    lease = store.lease(leased_path)
    clock.now += 2 * HOUR
    in_use = {held_path}

    assert store.delete_expired(lambda: in_use) == []
    assert _directory(store, leased_path).is_dir() and _directory(store, held_path).is_dir()
    assert store.resolve(held_path, allow_expired=True)[1] == _directory(store, held_path)

    lease.release()
    lease.release()  # idempotent: a second release does not free someone else's lease
    assert [c.tinker_path for c in store.delete_expired(lambda: in_use)] == [leased_path]
    in_use.clear()  # the sampler that loaded it is gone
    assert [c.tinker_path for c in store.delete_expired(lambda: in_use)] == [held_path]
    assert not _directory(store, held_path).exists()


def test_store_lease_counts_each_holder(tmp_path):
    store, clock = _store(tmp_path)
    path = _save(store, "twice")
    first, second = store.lease(path), store.lease(path)
    clock.now += HOUR
    first.release()
    assert store.delete_expired() == []
    second.release()
    assert len(store.delete_expired()) == 1


def test_reading_a_lease_lets_go_of_it_and_names_errors_by_the_tinker_path(tmp_path):
    """`CheckpointLease.reading()`: released after the read (kept on success with `keep`, as a
    sampler keeps its checkpoint), always released on an error, whose message names the
    tinker:// path where the backend wrote the directory."""
    store, clock = _store(tmp_path)
    released, kept, failing = (_save(store, name) for name in ("released", "kept", "failing"))
    leases = {path: store.lease(path) for path in (released, kept, failing)}
    clock.now += 2 * HOUR  # all expired: only a lease keeps one
    for path, keep in ((released, False), (kept, True)):
        with leases[path].reading(keep=keep) as directory:
            assert directory == _directory(store, path)
    with pytest.raises(NotFoundError) as failed, leases[failing].reading(keep=True) as where:
        raise NotFoundError(f"{where}: not an adapter checkpoint")
    assert str(failed.value) == f"{failing}: not an adapter checkpoint"
    expired = sorted(c.tinker_path for c in store.delete_expired())
    assert expired == sorted([released, failing])  # the kept one is still held


def test_store_set_ttl(tmp_path):
    store, clock = _store(tmp_path)
    path = _save(store, "kept", ttl=None)
    store.set_ttl("run-1", "weights/kept", 7200)
    assert (
        store.resolve(path)[0].expires_at
        == datetime.fromtimestamp(clock.now + 7200, UTC).isoformat()
    )
    store.set_ttl("run-1", "weights/kept", None)
    clock.now += 100 * HOUR
    assert store.resolve(path)[0].expires_at is None
    for bad in (3599, 10**10, 1.5, "3600", True):
        with pytest.raises(
            InvalidRequestError, match="between 3600 .1 hour. and 315576000 .10 years."
        ):
            store.set_ttl("run-1", "weights/kept", bad)


def test_store_tombstones_are_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(store_module, "MAX_TOMBSTONES", 3)
    store, clock = _store(tmp_path)
    paths = [_save(store, f"c{i}") for i in range(5)]
    clock.now += HOUR
    for index in range(5):  # one pass per checkpoint, so their deletion times are ordered
        deleted = store.delete_expired(lambda index=index: set(paths[index + 1 :]))
        assert [c.tinker_path for c in deleted] == [paths[index]]
        clock.now += 1
    stones = json.loads((store.root / "expired-checkpoints.json").read_text())
    assert list(stones) == paths[2:]
    with pytest.raises(NotFoundError, match="unknown checkpoint"):
        store.resolve(paths[0])
    with pytest.raises(CheckpointExpiredError, match="was deleted"):
        store.resolve(paths[4])


# -- the engine, through the SDK -----------------------------------------------------------------


def _checkpoints(rest: tinker.RestClient, run_id: str) -> dict[str, types.Checkpoint]:
    return {c.tinker_path: c for c in rest.list_checkpoints(run_id).result().checkpoints}


def test_ttl_is_recorded_and_listed(service_client, rest_client, engine):
    tc = service_client.create_lora_training_client(base_model=TINY, rank=2, seed=31).result()
    run_id = tc.get_info().model_id
    state = tc.save_state("ttl-state", ttl_seconds=WEEK).result().path  # the cookbook's default
    sampler = tc.save_weights_for_sampler("ttl-sampler", ttl_seconds=2 * HOUR).result().path
    forever = tc.save_state("ttl-forever").result().path

    listed = _checkpoints(rest_client, run_id)
    assert listed[state].expires_at - listed[state].time == timedelta(seconds=WEEK)
    assert listed[sampler].expires_at - listed[sampler].time == timedelta(seconds=2 * HOUR)
    assert listed[forever].expires_at is None
    user = {
        c.tinker_path: c for c in rest_client.list_user_checkpoints(limit=1000).result().checkpoints
    }
    assert user[state].expires_at == listed[state].expires_at
    run = rest_client.get_training_run(run_id).result()
    assert run.last_sampler_checkpoint.expires_at == listed[sampler].expires_at

    meta = engine.log_file.parent / "runs" / run_id / "weights" / "ttl-state.json"
    assert (
        datetime.fromisoformat(json.loads(meta.read_text())["expires_at"])
        == listed[state].expires_at
    )
    assert rest_client.get_weights_info_by_tinker_path(state).result().base_model == TINY


def test_rest_ttl_route_sets_and_clears(service_client, rest_client, raw):
    tc = service_client.create_lora_training_client(base_model=TINY, rank=2, seed=32).result()
    run_id = tc.get_info().model_id
    path = tc.save_state("ttl-route").result().path
    before = datetime.now(UTC)
    rest_client.set_checkpoint_ttl_from_tinker_path(path, 86400).result()
    after = datetime.now(UTC)
    expires = _checkpoints(rest_client, run_id)[path].expires_at
    slack = timedelta(milliseconds=1)  # microsecond rounding of the two clocks' readings
    assert before - slack <= expires - timedelta(seconds=86400) <= after + slack

    rest_client.set_checkpoint_ttl_from_tinker_path(path, None).result()
    assert _checkpoints(rest_client, run_id)[path].expires_at is None

    with pytest.raises(
        tinker.BadRequestError, match="ttl_seconds must be a whole number of seconds"
    ):
        rest_client.set_checkpoint_ttl_from_tinker_path(path, 60).result()
    with pytest.raises(tinker.NotFoundError, match="unknown checkpoint"):
        rest_client.set_checkpoint_ttl_from_tinker_path(
            f"tinker://{run_id}/weights/missing", HOUR
        ).result()
    response = raw.put(f"/training_runs/{run_id}/checkpoints/weights/ttl-route/ttl", json={})
    assert (
        response.status_code == 400 and "field ttl_seconds is missing" in response.json()["error"]
    )


def _expire(path: str, state_dir: Path, ago: timedelta = timedelta(minutes=10)) -> str:
    """Rewrite the checkpoint's metadata so it expired `ago`; returns the new expires_at."""
    run_id, kind, name = path.removeprefix("tinker://").split("/")
    meta = state_dir / "runs" / run_id / kind / f"{name}.json"
    data = json.loads(meta.read_text())
    data["expires_at"] = (datetime.now(UTC) - ago).isoformat()
    tmp = meta.with_name(f".{meta.name}.test")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, meta)  # the engine never reads a half-written file
    return data["expires_at"]


def _dir_of(path: str, state_dir: Path) -> Path:
    run_id, kind, name = path.removeprefix("tinker://").split("/")
    return state_dir / "runs" / run_id / kind / name


def _client(engine) -> tinker.ServiceClient:
    return tinker.ServiceClient(base_url=engine.base_url, api_key=engine.api_key_for_clients)


def _rest(engine) -> tinker.RestClient:
    return tinker.RestClient(base_url=engine.base_url, api_key=engine.api_key_for_clients)


def test_a_restarted_engine_deletes_what_expired_while_down_and_what_a_killed_one_left(tmp_path):
    """What expired while no engine ran is deleted before the next one answers anything. A
    deletion pass renames an expired checkpoint to `.<name>.expired-*`, then deletes its files;
    an engine killed in between (or mid-save, mid-delete) leaves such directories behind: the
    next engine removes them too before it serves, and keeps every committed checkpoint."""
    from tinker_chief.engine.server.launcher import start_engine

    state = tmp_path / "state"
    with start_engine(state_dir=state, device="cpu", dtype="float32") as first:
        client = _client(first)
        tc = client.create_lora_training_client(base_model=TINY, rank=2, seed=33).result()
        run_id = tc.get_info().model_id
        old_state = tc.save_state("old", ttl_seconds=HOUR).result().path
        old_sampler = tc.save_weights_for_sampler("old", ttl_seconds=HOUR).result().path
        kept = tc.save_state("kept", ttl_seconds=WEEK).result().path
        kept_sampler = tc.save_weights_for_sampler("kept").result().path
        client.close("success").result()
    state_expired, sampler_expired = _expire(old_state, state), _expire(old_sampler, state)
    folder = _dir_of(kept_sampler, state).parent
    leftovers = [
        folder / ".gone.expired-0badc0de",  # renamed away by a pass, files not yet deleted
        folder / ".saving.k2j4h5g6",  # the staging directory of a save that never finished
        folder / "uncommitted",  # a directory whose metadata (the commit marker) was never written
    ]
    for directory in leftovers:
        shutil.copytree(_dir_of(kept_sampler, state), directory)
    (folder / ".kept.json.1234.5678.tmp").write_text("{")  # a metadata file half written

    with start_engine(state_dir=state, device="cpu", dtype="float32") as second:
        # The first pass runs before the engine answers anything: the files are gone already.
        assert not _dir_of(old_state, state).exists() and not _dir_of(old_sampler, state).exists()
        assert _dir_of(kept, state).is_dir()
        assert sorted(entry.name for entry in folder.iterdir()) == ["kept", "kept.json"]
        rest, client = _rest(second), _client(second)
        assert set(_checkpoints(rest, run_id)) == {kept, kept_sampler}
        gone = re.escape(f"{old_sampler} expired at {sampler_expired} and was deleted")
        with pytest.raises(tinker.NotFoundError, match=gone):
            client.create_sampling_client(model_path=old_sampler).result()
        with pytest.raises(
            tinker.NotFoundError, match=re.escape(f"{old_state} expired at {state_expired}")
        ):
            client.create_training_client_from_state(old_state).result()
        with pytest.raises(tinker.NotFoundError, match="expired at"):
            rest.get_weights_info_by_tinker_path(old_state).result()
        sampler = client.create_sampling_client(model_path=kept_sampler).result()
        sampled = sampler.sample(types.ModelInput.from_ints([1, 2, 3]), 1, GREEDY).result()
        assert len(sampled.sequences) == 1
        client.close("success").result()


def _wait_until(condition, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.05)


def test_expiry_while_serving_spares_checkpoints_in_use(tmp_path, monkeypatch):
    from tinker_chief.engine.server.launcher import start_engine

    monkeypatch.setenv("CHIEF_ENGINE_EXPIRY_SWEEP_S", "0.2")
    state = tmp_path / "state"
    with start_engine(state_dir=state, device="cpu", dtype="float32") as running:
        client, rest = _client(running), _rest(running)
        tc = client.create_lora_training_client(base_model=TINY, rank=2, seed=34).result()
        run_id = tc.get_info().model_id
        held = tc.save_weights_for_sampler("held", ttl_seconds=HOUR).result().path
        idle = tc.save_weights_for_sampler("idle", ttl_seconds=HOUR).result().path
        sampler = client.create_sampling_client(model_path=held).result()
        prompt = types.ModelInput.from_ints([1, 2, 3, 4])
        before = sampler.sample(prompt, 1, GREEDY).result().sequences[0].tokens

        held_expired = _expire(held, state)
        _expire(idle, state)  # after `held`: once `idle` is gone, a pass has seen both expired
        with pytest.raises(tinker.NotFoundError, match=re.escape(f"{idle} expired at")):
            client.create_sampling_client(model_path=idle).result()
        _wait_until(
            lambda: not _dir_of(idle, state).exists(),
            "the deletion pass removed the idle checkpoint",
        )

        assert _dir_of(held, state).is_dir()  # a sampling session was loaded from it
        assert sampler.sample(prompt, 1, GREEDY).result().sequences[0].tokens == before
        with pytest.raises(
            tinker.NotFoundError, match=re.escape(f"{held} expired at {held_expired}")
        ):
            client.create_sampling_client(model_path=held).result()
        assert set(_checkpoints(rest, run_id)) == set()
        client.close("success").result()  # ends the session, and with it the sampler's hold
        _wait_until(
            lambda: not _dir_of(held, state).exists(), "the pass removed the released checkpoint"
        )
