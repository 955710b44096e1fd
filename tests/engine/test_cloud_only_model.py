"""The local engine, asked for a model that runs only on Tinker's cloud, says so."""

from __future__ import annotations

import pytest
import tinker


def test_cloud_only_model_is_a_404_that_says_what_to_do(service_client):
    expected = (
        r"Qwen/Qwen3-8B runs on Tinker's cloud only.*`chief train --backend tinker`"
        r".*--allow-model-dir DIR"
    )
    with pytest.raises(tinker.NotFoundError, match=expected):
        service_client.create_lora_training_client(base_model="Qwen/Qwen3-8B", rank=2).result()
    with pytest.raises(tinker.NotFoundError, match="runs on Tinker's cloud only"):
        service_client.create_sampling_client(base_model="openai/gpt-oss-20b").result()
