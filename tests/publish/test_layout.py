"""The adapter config an export writes, from the one a backend sent down."""

from __future__ import annotations

import pytest

from tinker_chief.errors import ExportError
from tinker_chief.publish.layout import BaseModel, standard_config

TIED = BaseModel(
    name="tiny-random-llama",
    hub_id="chief/tiny-random-llama",
    card_id="chief/tiny-random-llama",
    weights_dir=None,
    tied_embeddings=True,
    model_type="llama",
)


def test_a_tied_output_embedding_lora_joins_the_target_parameters_already_there():
    sent = {
        "peft_type": "LORA",
        "base_model_name_or_path": "/machine/local/path",
        "target_modules": ["q_proj", "lm_head"],
        "target_parameters": ["experts.down_proj"],
    }
    config = standard_config(sent, TIED)
    assert config["base_model_name_or_path"] == "chief/tiny-random-llama"
    assert config["target_modules"] == ["q_proj"]
    assert config["target_parameters"] == ["experts.down_proj", "lm_head.weight"]
    assert sent["target_parameters"] == ["experts.down_proj"]  # the backend's config is not edited


def test_target_parameters_that_are_not_a_list_are_one_error_line():
    sent = {
        "peft_type": "LORA",
        "target_modules": ["lm_head"],
        "target_parameters": "experts.down_proj",
    }
    with pytest.raises(
        ExportError, match=r"target_parameters is 'experts.down_proj'; expected a list"
    ):
        standard_config(sent, TIED)
