"""eval-offline against Tinker's cloud: runs only with TINKER_API_KEY (never in CI here)."""

from __future__ import annotations

import os

import pytest

from tinker_chief.evals.offline import OfflineConfig, run_offline
from tinker_chief.evals.sampling import GenerationSettings

pytestmark = [pytest.mark.cloud,
              pytest.mark.skipif(not os.environ.get("TINKER_API_KEY"), reason="needs TINKER_API_KEY")]


def test_eval_offline_on_tinker_cloud(qa_file, tmp_path, monkeypatch):
    monkeypatch.delenv("CHIEF_ENGINE_URL", raising=False)
    monkeypatch.delenv("TINKER_BASE_URL", raising=False)
    model = os.environ.get("CHIEF_CLOUD_TEST_MODEL", "Qwen/Qwen3-8B")
    result = run_offline(OfflineConfig(model=model, data=qa_file, grader="numeric",
                                       settings=GenerationSettings(max_tokens=32), output_dir=tmp_path / "o"))
    assert result.metrics["backend"] == "tinker-cloud" and result.metrics["total"] == 5
