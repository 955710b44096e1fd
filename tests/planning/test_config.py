"""chief.toml: documented round trip, and errors naming the file and the dotted field."""

from __future__ import annotations

import tomllib

import pytest

from tinker_chief.errors import ChiefDeprecation, ConfigurationError
from tinker_chief.planning import load_project, save_project
from tinker_chief.planning.config import DataConfig, OptimizerConfig, ProjectConfig, ScheduleConfig
from tinker_chief.planning.templates import build_eval_suite
from tinker_chief.planning.toml_writer import dump_config


def _config(**overrides) -> ProjectConfig:
    base = dict(
        name="demo",
        base_model="tiny-random-llama",
        renderer="chatml",
        data=DataConfig(train="data/train.jsonl", val="data/val.jsonl"),
        optimizer=OptimizerConfig(learning_rate=1e-3),
        schedule=ScheduleConfig(batch_size=8, steps=30),
        eval_suite=build_eval_suite(
            "code", name="demo-code", nll_data="data/val.jsonl", product_data="data/val_qa.jsonl"
        ),
        gate={"max_drop": 0.02, "tolerances": {"product/accuracy": 0.05}},
    )
    return ProjectConfig(**{**base, **overrides})


def test_round_trip_keeps_every_value_and_documents_sections(tmp_path):
    config = _config(recipe="dpo", use_case="code")
    path = save_project(tmp_path, config)
    text = path.read_text()
    assert "# Peak learning rate." in text and "[[eval_suite.tasks]]" in text
    assert "# LoRA on MLP + attention" in text
    loaded = load_project(tmp_path)
    assert loaded.config == config
    assert loaded.config.eval_suite.version == config.eval_suite.version
    assert loaded.train_path == tmp_path.resolve() / "data/train.jsonl"
    assert loaded.config.gate_dict()["tolerances"] == {"product/accuracy": 0.05}


def test_strings_with_quotes_and_newlines_survive(tmp_path):
    text = 'say "hi"\nand \\ leave'
    config = _config()
    suite = config.eval_suite
    tasks = [suite.tasks[0].model_copy(update={"description": text}), *suite.tasks[1:]]
    config = config.model_copy(update={"eval_suite": suite.model_copy(update={"tasks": tasks})})
    assert tomllib.loads(dump_config(config))["eval_suite"]["tasks"][0]["description"] == text


def _write(tmp_path, text: str):
    (tmp_path / "chief.toml").write_text(text)


def test_bad_field_names_dotted_path(tmp_path):
    text = dump_config(_config()).replace("rank = 32", "rank = 0")
    _write(tmp_path, text)
    with pytest.raises(
        ConfigurationError,
        match=r"chief\.toml: field `lora\.rank`: expected greater than or equal to 1, got 0",
    ):
        load_project(tmp_path)


def test_values_are_not_coerced_and_numbers_are_finite(tmp_path):
    """TOML values come typed: a string is never read as a boolean or a number (a quoted "yes"
    must not switch on the model's own code), and inf or nan is no setting."""
    text = (
        dump_config(_config())
        .replace("trust_remote_code = false", 'trust_remote_code = "yes"')
        .replace("batch_size = 8", 'batch_size = "8"')
        .replace("learning_rate = 0.001", "learning_rate = inf")
        .replace("max_drop = 0.02", "max_drop = nan")
    )
    _write(tmp_path, text)
    with pytest.raises(ConfigurationError, match="4 invalid fields") as info:
        load_project(tmp_path)
    reasons = "\n".join(info.value.reasons)
    assert "field `trust_remote_code`: expected a valid boolean, got 'yes'" in reasons
    assert "field `schedule.batch_size`: expected a valid integer, got '8'" in reasons
    assert "field `optimizer.learning_rate`: expected a finite number, got inf" in reasons
    assert "field `gate.max_drop`: expected a finite number, got nan" in reasons


def test_a_grader_spec_that_builds_no_grader_is_a_field_error(tmp_path):
    """Caught when chief.toml is read (`chief plan`, before `chief train` writes a run or `chief
    eval` starts an engine): an unknown grader, an option value it cannot use, a bad regex."""
    text = dump_config(_config(recipe="rl"))
    text = text.replace('grader = "normalized_exact"', 'grader = "numeric:tolerance=x"', 1)
    text = text.replace('grader = "exact"', 'grader = "regex:pattern=("', 1)  # a suite task's
    _write(tmp_path, text)
    with pytest.raises(ConfigurationError, match="2 invalid fields") as info:
        load_project(tmp_path)
    reasons = "\n".join(info.value.reasons)
    assert (
        "`rl.grader`: expected a grader spec chief can build (grader `numeric:tolerance=x`"
        in reasons
    )
    assert "grader `regex:pattern=(`: missing )" in reasons


def test_gate_tolerances_are_not_negative_and_resamples_are_bounded(tmp_path):
    text = dump_config(_config()).replace('"product/accuracy" = 0.05', '"product/accuracy" = -1.0')
    _write(
        tmp_path,
        text.replace("bootstrap_resamples = 10000", "bootstrap_resamples = 1000000000000000"),
    )
    with pytest.raises(ConfigurationError, match="2 invalid fields") as info:
        load_project(tmp_path)
    reasons = "\n".join(info.value.reasons)
    assert (
        "field `gate.tolerances.product/accuracy`: expected greater than or equal to 0" in reasons
    )
    assert "field `gate.bootstrap_resamples`: expected less than or equal to 1000000" in reasons


@pytest.mark.parametrize("name", ["a/b:v3", "my project", "-x"])
def test_the_name_is_one_the_registry_can_record(tmp_path, name):
    """Checkpoints are registered under the project's name: one the registry would refuse is a
    field error when chief.toml is read, not a failed run at its first checkpoint."""
    _write(tmp_path, dump_config(_config()).replace('name = "demo"\n', f'name = "{name}"\n'))
    with pytest.raises(ConfigurationError) as info:
        load_project(tmp_path)
    assert "field `name`: expected letters, digits, '_', '.', '-' or '/'" in str(info.value)
    assert f"got {name!r}" in str(info.value)


def test_a_suite_needs_a_name(tmp_path):
    _write(tmp_path, dump_config(_config()).replace('name = "demo-code"', 'name = ""'))
    with pytest.raises(
        ConfigurationError, match="field `eval_suite.name`: expected at least 1 character, got ''"
    ):
        load_project(tmp_path)


def test_unknown_key_and_nested_task_field(tmp_path):
    text = (
        dump_config(_config())
        .replace("[lora]", "[lora]\nrnak = 4")
        .replace('kind = "inspect"', 'kind = "quiz"', 1)
    )
    _write(tmp_path, text)
    with pytest.raises(ConfigurationError, match="2 invalid fields") as info:
        load_project(tmp_path)
    reasons = info.value.reasons
    assert any(r.startswith("field `lora.rnak`: expected no such key") for r in reasons)
    assert any(
        r.startswith("field `eval_suite.tasks[1].kind`: expected 'nll', 'jsonl'") for r in reasons
    )


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(
        ConfigurationError, match=r"chief\.toml: not found; create a project with `chief init`"
    ):
        load_project(tmp_path)
    _write(tmp_path, "name = [unclosed")
    with pytest.raises(ConfigurationError, match=r"chief\.toml:1: invalid TOML"):
        load_project(tmp_path)


def test_schema_rules(tmp_path):
    with pytest.raises(ConfigurationError, match="lora"):
        _write(
            tmp_path,
            dump_config(_config())
            .replace("train_attn = true", "train_attn = false")
            .replace("train_mlp = true", "train_mlp = false")
            .replace("train_unembed = true", "train_unembed = false"),
        )
        load_project(tmp_path)
    _write(tmp_path, dump_config(_config()).replace("schema_version = 2", "schema_version = 99"))
    with pytest.raises(ConfigurationError, match="newer than this chief understands"):
        load_project(tmp_path)
    _write(tmp_path, dump_config(_config()).replace("[gate]", "[gate]\nmax_dorp = 1"))
    with pytest.raises(ConfigurationError, match=r"field `gate\.max_dorp`"):
        load_project(tmp_path)


def test_the_old_task_key_is_read_as_recipe_with_a_note_and_saved_as_recipe(tmp_path):
    # A chief.toml written before `recipe` (schema 1) names the training recipe `task`.
    old = dump_config(_config(recipe="dpo")).replace('recipe = "dpo"', 'task = "dpo"')
    _write(tmp_path, old.replace("schema_version = 2", "schema_version = 1"))
    with pytest.warns(
        ChiefDeprecation, match=r'chief\.toml: `task = "dpo"` is the old name of `recipe`'
    ):
        project = load_project(tmp_path)
    assert project.config.recipe == "dpo"
    text = save_project(project).read_text()
    assert 'recipe = "dpo"' in text and "\ntask = " not in text
    assert "schema_version = 2" in text


def test_task_beside_recipe_is_refused(tmp_path):
    _write(tmp_path, dump_config(_config()).replace('recipe = "sl"', 'recipe = "sl"\ntask = "rl"'))
    with pytest.raises(
        ConfigurationError, match=r"field `task`: expected no such key beside `recipe`"
    ):
        load_project(tmp_path)
