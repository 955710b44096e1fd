"""Shared fixtures: every test gets a private project directory; models are cached per run.

`engine` is the one engine per test session (tiny-random-llama, float32 so logprob comparisons
are exact up to float error) with a private state dir (`engine.state_dir`), shared by the
engine, evals, training and cookbook tests; tests that restart or configure an engine start
their own with `start_engine`.

A developer's own settings never reach a test (`no_developer_settings`): no Tinker key or URL,
no `CHIEF_*` variable but the suite's own (`SUITE_SETTINGS`), and no experiment tracker's
(`MLFLOW_*`, `WANDB_*`, `TRACKIO_*`: a tracked test must never write to the team's server); the
trackers' stores outside a project are private to the test run (`TRACKER_STORES`). Tests marked
`cloud` talk to Tinker's cloud itself: they get the developer's `TINKER_API_KEY` back, and are
skipped without.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("TINKER_TELEMETRY", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Built-in models are materialized once into a cache kept between runs (scripts/test.sh's default).
os.environ.setdefault(
    "CHIEF_CACHE_DIR", str(Path(__file__).resolve().parents[1] / ".venv" / "chief-cache")
)

# Kept: the suite's own switches (chief never reads them) and the model cache, which decides
# where built-in weights are kept, never what a test sees.
SUITE_SETTINGS = frozenset({"CHIEF_CACHE_DIR", "CHIEF_UPDATE_GOLDEN", "CHIEF_CLOUD_TEST_MODEL"})
CLOUD_API_KEY = os.environ.get("TINKER_API_KEY")  # given back to `cloud` tests only
TRACKERS = ("MLFLOW_", "WANDB_", "TRACKIO_")  # the experiment trackers' variables (`--track`)

# Where the trackers keep what is not in a project: Trackio's store (read once, when trackio is
# first imported, which the cookbook's ml_log does), W&B's config, cache and staging areas.
_TRACKER_HOME = Path(tempfile.mkdtemp(prefix="chief-tests-trackers-"))
atexit.register(shutil.rmtree, _TRACKER_HOME, ignore_errors=True)
TRACKER_STORES = {
    "TRACKIO_DIR": str(_TRACKER_HOME / "trackio"),
    "WANDB_CONFIG_DIR": str(_TRACKER_HOME / "wandb-config"),
    "WANDB_CACHE_DIR": str(_TRACKER_HOME / "wandb-cache"),
    "WANDB_DATA_DIR": str(_TRACKER_HOME / "wandb-data"),
}
os.environ.update(TRACKER_STORES)


def _developer_settings() -> list[str]:
    tinker = ("TINKER_API_KEY", "TINKER_BASE_URL")
    return [
        name
        for name in os.environ
        if name in tinker
        or (name.startswith("CHIEF_") and name not in SUITE_SETTINGS)
        or (name.startswith(TRACKERS) and name not in TRACKER_STORES)
    ]


@pytest.fixture(scope="session", autouse=True)
def no_developer_settings() -> Iterator[None]:
    """Cleared for the whole session, before any session fixture starts an engine (so its process
    inherits none either); what a module fixture then sets (the cookbook's TINKER_BASE_URL)
    stays."""
    with pytest.MonkeyPatch.context() as patch:
        for name in _developer_settings():
            patch.delenv(name)
        yield


@pytest.fixture(autouse=True)
def cloud_key_for_cloud_tests(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    if request.node.get_closest_marker("cloud"):
        if not CLOUD_API_KEY:
            pytest.skip("needs Tinker's cloud: set TINKER_API_KEY")
        monkeypatch.setenv("TINKER_API_KEY", CLOUD_API_KEY)


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
    with start_engine(
        state_dir=state, device="cpu", dtype="float32", max_training_clients=1024
    ) as handle:
        handle.state_dir = state  # tests read saved adapters from here
        yield handle


@pytest.fixture
def project_dir(tmp_path, monkeypatch):
    """A fresh working directory for a test, so nothing leaks between tests."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
