"""The engine's billing API through the unmodified SDK: `AdminClient` and the `tinker billing` CLI.

One session does known work (a forward_backward of counted tokens, two checkpoints, a sample
and a compute_logprobs); the hourly events the engine reports for that session must be exactly
that work, and survive an engine restart. Bad queries get one sentence each.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
import tinker
from tinker import types

from server_support import TINY, run_tinker_cli, sft_datum

PROJECT = "billing-test"


def window() -> tuple[str, str]:
    """From the hour before this one to the hour after: the test's work falls inside."""
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    return ((hour - timedelta(hours=1)).isoformat(), (hour + timedelta(hours=2)).isoformat())


def session_totals(events: list[dict], session_id: str) -> dict[str, float]:
    """Quantities of one session's events, summed over hours, by type (prefill split by cache)."""
    totals: dict[str, float] = {}
    for event in events:
        if event["session_id"] != session_id:
            continue
        info = event["event_info"]
        key = info["type"] + (":cached" if info.get("cached") else "")
        amount = info.get("token_count", info.get("count", info.get("gigabyte_hours")))
        totals[key] = totals.get(key, 0) + amount
    return totals


def do_known_work(base_url: str, api_key: str) -> dict:
    """The work and what it should bill: 28 training tokens, 2 checkpoints, a sample's prompt and
    tokens, a compute_logprobs (its prompt and its one sampled token)."""
    client = tinker.ServiceClient(
        base_url=base_url,
        api_key=api_key,
        project_id=PROJECT,
        user_metadata={"chief_scope": "run:test"},
    )
    tc = client.create_lora_training_client(base_model=TINY, rank=2, seed=1).result()
    data = [sft_datum(list(range(5, 25))), sft_datum(list(range(30, 40)))]  # 19 + 9 input tokens
    tc.forward_backward(data, "cross_entropy").result()
    tc.optim_step(types.AdamParams(learning_rate=0.01)).result()
    tc.save_state("b1").result()
    sampler_path = tc.save_weights_for_sampler("b1").result().path
    sampler = client.create_sampling_client(model_path=sampler_path).result()
    params = types.SamplingParams(max_tokens=4, temperature=1.0, seed=3)
    sampled = sampler.sample(types.ModelInput.from_ints([5, 6, 7, 8, 9]), 2, params).result()
    sampler.compute_logprobs(types.ModelInput.from_ints([9, 10, 11, 12, 13, 14])).result()
    session_id = client.holder.get_session_id()
    client.close("success").result()
    return {
        "session_id": session_id,
        "run_id": tc.get_info().model_id,
        "expected": {
            "training": 28,
            "checkpoint": 2,
            "sampling_prefill": 5 + 6,
            "sampling_sample": sum(len(s.tokens) for s in sampled.sequences) + 1,
        },
    }


@pytest.fixture(scope="module")
def work(engine):
    return do_known_work(engine.base_url, engine.api_key_for_clients)


def tinker_cli(engine, *args: str) -> dict:
    done = run_tinker_cli(engine.base_url, engine.api_key_for_clients, "-f", "json", *args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_admin_client_reports_exactly_the_sessions_work(engine, work):
    admin = tinker.AdminClient(base_url=engine.base_url, api_key=engine.api_key_for_clients)
    usage = admin.get_billing_usage(*window()).result()
    events = [e.model_dump(mode="json") for e in usage.data]
    totals = session_totals(events, work["session_id"])
    storage = totals.pop("storage")
    assert totals == work["expected"]
    assert storage > 0  # two checkpoints stored for a few seconds, in GB-hours
    mine = [e for e in usage.data if e.session_id == work["session_id"]]
    assert {e.project_id for e in mine} == {PROJECT} and {e.base_model for e in mine} == {TINY}
    assert all(e.bucket_end - e.bucket_start == timedelta(hours=1) for e in mine)
    assert all(e.estimated_cost_usd is None for e in mine)  # the engine has no rate card
    assert usage.sessions[work["session_id"]].user_metadata == {"chief_scope": "run:test"}


def test_tinker_billing_cli_against_the_engine(engine, work, rest_client):
    usage = tinker_cli(engine, "billing", "usage", *window())
    totals = session_totals(usage["data"], work["session_id"])
    assert {k: v for k, v in totals.items() if k != "storage"} == work["expected"]
    assert usage["sessions"][work["session_id"]]["user_metadata"] == {"chief_scope": "run:test"}

    stored = tinker_cli(engine, "billing", "checkpoint-storage", "--project-id", PROJECT)["data"]
    sizes = [
        c.size_bytes for c in rest_client.list_checkpoints(work["run_id"]).result().checkpoints
    ]
    assert [(row["project_id"], row["checkpoint_count"], row["size_bytes"]) for row in stored] == [
        (PROJECT, 2, sum(sizes))
    ]
    assert stored[0]["size_gigabytes"] == pytest.approx(sum(sizes) / 1e9)


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ({"ending_before": "2026-01-01T01:00:00Z"}, "query parameter starting_on is missing"),
        (
            {"starting_on": "yesterday", "ending_before": "2026-01-01T01:00:00Z"},
            "starting_on is not a time",
        ),
        (
            {"starting_on": "2026-01-01T00:30:00Z", "ending_before": "2026-01-01T01:00:00Z"},
            "is not on a UTC hour",
        ),
        (
            {"starting_on": "2026-01-01T00:00:00Z", "ending_before": "2026-01-20T00:00:00Z"},
            "at most 14 days",
        ),
        (
            {"starting_on": "2026-01-01T02:00:00Z", "ending_before": "2026-01-01T01:00:00Z"},
            "must be after",
        ),
        (
            {"starting_on": "2999-01-01T00:00:00Z", "ending_before": "2999-01-01T01:00:00Z"},
            "is in the future",
        ),
    ],
)
def test_bad_usage_queries_get_one_sentence(raw, query, says):
    response = raw.get("/billing/usage/events", params=query)
    assert response.status_code == 400 and says in response.json()["error"], response.text


def test_counters_survive_a_restart_and_deletion_stops_storage(tmp_path):
    from tinker_chief.engine.server.launcher import start_engine

    with start_engine(state_dir=tmp_path, device="cpu", dtype="float32") as handle:
        work = do_known_work(handle.base_url, handle.api_key_for_clients)
    with start_engine(state_dir=tmp_path, device="cpu", dtype="float32") as handle:
        key = handle.api_key_for_clients
        admin = tinker.AdminClient(base_url=handle.base_url, api_key=key)
        events = [
            e.model_dump(mode="json") for e in admin.get_billing_usage(*window()).result().data
        ]
        totals = session_totals(events, work["session_id"])
        assert {k: v for k, v in totals.items() if k != "storage"} == work["expected"]

        rest = tinker.RestClient(base_url=handle.base_url, api_key=key)
        assert (
            admin.get_current_checkpoint_storage_usage(PROJECT).result().data[0].checkpoint_count
            == 2
        )
        for checkpoint in rest.list_checkpoints(work["run_id"]).result().checkpoints:
            rest.delete_checkpoint_from_tinker_path(checkpoint.tinker_path).result()
        assert admin.get_current_checkpoint_storage_usage(PROJECT).result().data == []
        before = session_totals(
            [e.model_dump(mode="json") for e in admin.get_billing_usage(*window()).result().data],
            work["session_id"],
        )["storage"]
        time.sleep(1.0)  # deleted checkpoints accrue no more storage
        after = session_totals(
            [e.model_dump(mode="json") for e in admin.get_billing_usage(*window()).result().data],
            work["session_id"],
        )["storage"]
        assert after == before
