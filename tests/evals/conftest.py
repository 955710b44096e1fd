"""Fixtures for eval tests: one real local engine (tiny-random-llama) shared by the session.

Tests drive it only through the tinker SDK / our CLI over HTTP, exactly as users do.
"""

from __future__ import annotations

import os

import pytest

from evals_support import write_jsonl

TINY = "tiny-random-llama"


@pytest.fixture(scope="session")
def engine(tmp_path_factory):
    os.environ.setdefault("CHIEF_CACHE_DIR", "/tmp/chiefcache")
    from tinker_chief.engine.server.launcher import start_engine

    handle = start_engine(state_dir=tmp_path_factory.mktemp("engine"))
    yield handle
    handle.stop()


@pytest.fixture
def connection(engine):
    from tinker_chief.evals.connection import Connection

    return Connection(engine.base_url, engine.api_key_for_clients)


@pytest.fixture
def qa_file(tmp_path):
    return write_jsonl(tmp_path / "qa.jsonl", [{"input": f"What is {i}+1?", "output": str(i + 1), "id": f"q{i}"}
                                               for i in range(5)])
