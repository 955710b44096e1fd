"""Fixtures for engine tests, around the session's real engine subprocess (`engine`, in
tests/conftest.py); tests that restart or configure the engine start their own with
`start_engine`. `service_client`/`rest_client` are the unmodified `tinker` SDK pointed at it,
and `raw` is an httpx client for requests the SDK cannot send. Nothing here is faked: no
Tinker cloud is involved in these tests at all.
"""

from __future__ import annotations

import httpx
import pytest

TINY = "tiny-random-llama"


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
    with httpx.Client(
        base_url=f"{engine.base_url}/api/v1",
        timeout=60,
        headers={"X-API-Key": engine.api_key_for_clients},
    ) as client:
        yield client


@pytest.fixture(scope="session")
def tokenizer(service_client):
    return (
        service_client.create_lora_training_client(base_model=TINY, rank=2, seed=0)
        .result()
        .get_tokenizer()
    )
