"""Shared fixtures: every test gets a private project directory; models are cached per run.

`engine` is the one engine per test session (tiny-random-llama, float32 so logprob comparisons
are exact up to float error) with a private state dir (`engine.state_dir`), shared by the
engine, training and cookbook tests; tests that restart or configure an engine start their
own with `start_engine`.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

import pytest

os.environ.setdefault("TINKER_TELEMETRY", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Materializing a built-in registers it in the Hugging Face cache (models/hf_cache.py): a fresh
# cache per test run, shared with the engines it starts, so no test sees entries of an earlier one.
os.environ["HF_HUB_CACHE"] = tempfile.mkdtemp(prefix="chief-tests-hf-hub-")
atexit.register(shutil.rmtree, os.environ["HF_HUB_CACHE"], ignore_errors=True)


@pytest.fixture(scope="session")
def engine(tmp_path_factory):
    from tinker_chief.engine.server.launcher import start_engine

    state = tmp_path_factory.mktemp("engine-state")
    # Tests keep the training clients they make in one session for the whole run, past the
    # engine's default cap of 32; the cap itself is tested in tests/engine/test_server_trust.py.
    with start_engine(state_dir=state, device="cpu", dtype="float32", max_training_clients=1024) as handle:
        handle.state_dir = state  # tests read saved adapters from here
        yield handle


@pytest.fixture
def project_dir(tmp_path, monkeypatch):
    """A fresh working directory for a test, so nothing leaks between tests."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
