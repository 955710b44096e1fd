"""A developer's environment cannot change the suite's results: tests/conftest.py, run by a real
pytest with a developer's Tinker key, URL, CHIEF_* settings and experiment-tracker settings
exported, hides them from every test (and from what session fixtures start), keeps the suite's
model cache, gives the trackers a private store, and gives the key back only to tests marked
`cloud`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

CONFTEST = Path(__file__).resolve().parent / "conftest.py"

INNER = """
import os
import subprocess
import sys

import pytest

SEEN = (
    "TINKER_API_KEY",
    "TINKER_BASE_URL",
    "CHIEF_ENGINE_URL",
    "CHIEF_ENGINE_API_KEY",
    "CHIEF_DEBUG",
    "MLFLOW_TRACKING_URI",
    "WANDB_API_KEY",
    "WANDB_PROJECT",
)


@pytest.fixture(scope="session")
def child_env():
    # what a session fixture (like `engine`) hands to a process it starts
    code = "import os, sys; print(sorted(n for n in sys.argv[1:] if n in os.environ))"
    return subprocess.run(
        [sys.executable, "-c", code, *SEEN], capture_output=True, text=True
    ).stdout.strip()


def test_a_test_sees_none_of_the_developer_settings(child_env):
    assert [name for name in SEEN if name in os.environ] == []
    assert child_env == "[]"
    assert os.environ["CHIEF_CACHE_DIR"] == "/kept/cache"
    assert os.environ["TRACKIO_DIR"] != "/developer/trackio"  # the run's private store instead


@pytest.fixture(scope="module")
def module_setting():
    with pytest.MonkeyPatch.context() as patch:
        # what a module fixture sets stays set
        patch.setenv("CHIEF_ENGINE_URL", "http://127.0.0.1:7")
        yield


def test_a_module_fixture_s_setting_reaches_its_tests(module_setting):
    assert os.environ["CHIEF_ENGINE_URL"] == "http://127.0.0.1:7"


@pytest.mark.cloud
def test_a_cloud_test_gets_the_key_back():
    assert os.environ["TINKER_API_KEY"] == "tml-developer-key"
    assert "TINKER_BASE_URL" not in os.environ
"""


def _run(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    shutil.copy(CONFTEST, tmp_path / "conftest.py")
    (tmp_path / "test_inner.py").write_text(INNER)
    base = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("CHIEF_", "TINKER_API_KEY", "TINKER_BASE_URL"))
    }
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-rs",
            "-o",
            "markers=cloud: talks to Tinker's cloud",
            "--strict-markers",
            "test_inner.py",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**base, "CHIEF_CACHE_DIR": "/kept/cache", **env},
    )


def test_developer_settings_are_hidden_and_the_key_goes_to_cloud_tests_only(tmp_path: Path) -> None:
    result = _run(
        tmp_path,
        TINKER_API_KEY="tml-developer-key",
        TINKER_BASE_URL="http://127.0.0.1:9",
        CHIEF_ENGINE_URL="http://127.0.0.1:9",
        CHIEF_ENGINE_API_KEY="tml-engine",
        CHIEF_DEBUG="1",
        MLFLOW_TRACKING_URI="http://127.0.0.1:9",
        WANDB_API_KEY="developer-wandb-key",
        WANDB_PROJECT="team",
        TRACKIO_DIR="/developer/trackio",
    )
    assert "3 passed" in result.stdout, result.stdout + result.stderr


def test_cloud_tests_are_skipped_without_a_key(tmp_path: Path) -> None:
    result = _run(tmp_path)
    assert "2 passed, 1 skipped" in result.stdout and "needs Tinker's cloud" in result.stdout, (
        result.stdout
    )
