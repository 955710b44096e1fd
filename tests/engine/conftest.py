"""Fixtures for engine tests: a real engine subprocess (via the launcher) on a free port.

`engine` is one engine per test session (tiny-random-llama, float32 so logprob comparisons
are exact up to float error) with a private state dir; tests that restart or configure the
engine start their own with `start_engine`. `service_client`/`rest_client` are the unmodified
`tinker` SDK pointed at it, and `raw` is an httpx client for requests the SDK cannot send.
Nothing here is faked: no Tinker cloud is involved in these tests at all.
"""

from __future__ import annotations

import os

import httpx
import pytest

os.environ.setdefault("TINKER_TELEMETRY", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

TINY = "tiny-random-llama"


@pytest.fixture(scope="session")
def engine(tmp_path_factory):
    from tinker_chief.engine.server.launcher import start_engine

    with start_engine(state_dir=tmp_path_factory.mktemp("engine-state"), device="cpu", dtype="float32") as handle:
        yield handle


@pytest.fixture(scope="session")
def service_client(engine):
    import tinker

    client = tinker.ServiceClient(base_url=engine.base_url, api_key=engine.api_key_for_clients)
    yield client
    client.close("success").result()


@pytest.fixture(scope="session")
def rest_client(engine):
    import tinker

    return tinker.RestClient(base_url=engine.base_url, api_key=engine.api_key_for_clients)


@pytest.fixture
def raw(engine):
    with httpx.Client(base_url=f"{engine.base_url}/api/v1", timeout=60,
                      headers={"X-API-Key": engine.api_key_for_clients}) as client:
        yield client


@pytest.fixture(scope="session")
def tokenizer(service_client):
    return service_client.create_lora_training_client(base_model=TINY, rank=2, seed=0).result().get_tokenizer()
