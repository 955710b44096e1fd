"""eval-offline against Tinker's cloud.

The first test (marked `cloud`) runs only with the developer's TINKER_API_KEY (never in CI
here). Tinker's cloud cannot exist on this machine, so the second test fakes it, and only it: a
local engine that checks API keys stands in for the cloud, and the SDK's default base URL
(where a ServiceClient without `base_url` goes) is pointed at it. Everything chief does is real:
backend resolution from TINKER_API_KEY alone, the SDK, sampling, grading, and writing results
without the key.
"""

from __future__ import annotations

import json
import os

import pytest

from tinker_chief.evals.model_sampler import GenerationSettings
from tinker_chief.evals.offline import OfflineConfig, run_offline

TINY = "tiny-random-llama"


@pytest.mark.cloud
def test_eval_offline_on_tinker_cloud(qa_file, tmp_path):
    model = os.environ.get("CHIEF_CLOUD_TEST_MODEL", "Qwen/Qwen3-8B")
    result = run_offline(
        OfflineConfig(
            model=model,
            data=qa_file,
            grader="numeric",
            settings=GenerationSettings(max_tokens=32),
            output_dir=tmp_path / "o",
        )
    )
    assert result.metrics["backend"] == "tinker" and result.metrics["total"] == 5


@pytest.fixture
def cloud_env(cloud_default_url, monkeypatch):
    """TINKER_API_KEY is the fake cloud's key; returns it."""
    monkeypatch.setenv("TINKER_API_KEY", cloud_default_url.api_key_for_clients)
    return cloud_default_url.api_key_for_clients


def test_eval_offline_resolves_the_cloud_from_the_api_key_and_never_writes_it(
    cloud_env, qa_file, tmp_path
):
    out = tmp_path / "o"
    result = run_offline(
        OfflineConfig(
            model=TINY,
            data=qa_file,
            grader="numeric",
            settings=GenerationSettings(max_tokens=8),
            output_dir=out,
        )
    )
    assert result.metrics["backend"] == "tinker" and result.metrics["engine_precision"] is None
    assert result.metrics["total"] == 5 and result.metrics["errors"] == 0
    assert len(result.records_path.read_text().splitlines()) == 5
    written = json.dumps(result.as_json()) + "".join(
        p.read_text() for p in out.rglob("*") if p.is_file()
    )
    assert cloud_env not in written


def test_a_wrong_cloud_key_is_one_clear_error_without_the_key(
    cloud_env, qa_file, tmp_path, monkeypatch
):
    from tinker_chief.errors import EngineError

    wrong = "tml-wrong-key-9a8b7c"
    monkeypatch.setenv("TINKER_API_KEY", wrong)
    with pytest.raises(EngineError) as caught:
        run_offline(
            OfflineConfig(
                model=TINY,
                data=qa_file,
                grader="numeric",
                settings=GenerationSettings(max_tokens=8),
                output_dir=tmp_path / "o",
            )
        )
    message = str(caught.value)
    assert wrong not in message and cloud_env not in message
    assert "rejected the API key" in message and "TINKER_API_KEY" in message and "401" in message, (
        message
    )
