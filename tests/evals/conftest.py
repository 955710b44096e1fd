"""Fixtures for eval tests, around the session's one real engine (`engine`, tiny-random-llama,
in tests/conftest.py).

Tests drive it only through the tinker SDK / our CLI over HTTP, exactly as users do. Tinker's
cloud cannot exist here, so it is faked, and only it: `fake_cloud` is a local engine that checks
API keys (key `FAKE_CLOUD_KEY`), and `cloud_default_url` points the SDK's default base URL (where
a ServiceClient without `base_url` goes) at it. Everything chief does is real.
"""

from __future__ import annotations

import pytest

from jsonl_support import write_jsonl

TINY = "tiny-random-llama"
FAKE_CLOUD_KEY = "tml-fake-cloud-secret-4f1d2c"


@pytest.fixture
def connection(engine):
    from tinker_chief.connection import choose_backend, open_connection

    with open_connection(
        choose_backend(base_url=engine.base_url), api_key=engine.api_key_for_clients
    ) as opened:
        yield opened


@pytest.fixture(scope="session")
def fake_cloud(tmp_path_factory):
    """A key-checking local engine in the role of Tinker's cloud (see the module docstring)."""
    from tinker_chief.engine.server.launcher import start_engine

    with start_engine(
        state_dir=tmp_path_factory.mktemp("fake-cloud"), api_key=FAKE_CLOUD_KEY
    ) as handle:
        yield handle


@pytest.fixture
def cloud_default_url(fake_cloud, monkeypatch):
    """The SDK's default (cloud) URL is the fake cloud's, for this test."""
    import tinker.lib.base_url

    monkeypatch.setattr(tinker.lib.base_url, "DEFAULT_BASE_URL", fake_cloud.base_url)
    return fake_cloud


@pytest.fixture
def qa_file(tmp_path):
    return write_jsonl(
        tmp_path / "qa.jsonl",
        [{"input": f"What is {i}+1?", "output": str(i + 1), "id": f"q{i}"} for i in range(5)],
    )
