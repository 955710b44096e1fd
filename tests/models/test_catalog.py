"""The model catalog: names resolve case-insensitively, built-ins materialize offline."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading

import pytest

from tinker_chief.errors import ModelNotFoundError
from tinker_chief.models import (
    DEFAULT_MODEL,
    TINY_MODEL,
    get_renderer,
    load_model_config,
    load_tokenizer,
    materialize_model,
    renderer_name_for,
    resolve_model,
)


def test_builtin_names_match_case_insensitively():
    assert resolve_model("TINY-Random-Llama").name == TINY_MODEL
    assert resolve_model("smollm2-135m-instruct-q4_1").name == DEFAULT_MODEL


def test_unknown_model_lists_the_available_ones():
    with pytest.raises(ModelNotFoundError) as info:
        resolve_model("no-such-model")
    assert TINY_MODEL in str(info.value) and DEFAULT_MODEL in str(info.value)


def test_directory_without_config_is_refused(tmp_path):
    with pytest.raises(ModelNotFoundError, match="no config.json"):
        resolve_model(str(tmp_path))


def test_tiny_model_is_seeded_and_chatml():
    directory = materialize_model(TINY_MODEL)
    config = load_model_config(TINY_MODEL)
    tokenizer = load_tokenizer(TINY_MODEL)
    assert config["num_hidden_layers"] == 2 and config["vocab_size"] == len(tokenizer) == 259
    assert (directory / "model.safetensors").is_file()
    renderer = get_renderer(renderer_name_for(TINY_MODEL), tokenizer)
    prompt = renderer.build_generation_prompt([{"role": "user", "content": "hi"}])
    assert (
        tokenizer.decode(prompt.to_ints())
        == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    )


def test_a_tokenizer_loads_once_per_thread_until_its_files_change(tmp_path):
    model = tmp_path / "model"
    shutil.copytree(materialize_model(TINY_MODEL), model)
    first = load_tokenizer(str(model))
    assert load_tokenizer(str(model)) is first
    (model / "chat_template.jinja").write_text(
        "{% for m in messages %}[{{ m['content'] }}]{% endfor %}"
    )
    changed = load_tokenizer(str(model))
    assert changed is not first
    text = changed.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)
    assert text == "[hi]"
    shutil.rmtree(model)
    with pytest.raises(ModelNotFoundError):  # gone from disk: an error, not the cached copy
        load_tokenizer(str(model))


def test_each_thread_keeps_its_own_tokenizer():
    # A fast tokenizer used by two threads at once raises "Already borrowed" (a sweep's points
    # train on threads), so a thread never gets another thread's.
    here = load_tokenizer(TINY_MODEL)
    there: list[object] = []
    worker = threading.Thread(
        target=lambda: there.extend([load_tokenizer(TINY_MODEL), load_tokenizer(TINY_MODEL)])
    )
    worker.start()
    worker.join()
    assert there[0] is not here and there[0] is there[1]
    assert load_tokenizer(TINY_MODEL) is here


def test_tiny_model_weights_are_deterministic(tmp_path):
    from safetensors.numpy import load_file

    from tinker_chief.models.tiny import build_tiny_random_llama

    build_tiny_random_llama(tmp_path)
    rebuilt = load_file(str(tmp_path / "model.safetensors"))
    cached = load_file(str(materialize_model(TINY_MODEL) / "model.safetensors"))
    assert rebuilt.keys() == cached.keys()
    assert all((rebuilt[key] == cached[key]).all() for key in rebuilt)


def test_local_directory_resolves_to_itself():
    directory = materialize_model(TINY_MODEL)
    spec = resolve_model(str(directory))
    assert spec.source == "local" and spec.local_dir == directory.resolve()
    assert json.loads((directory / "config.json").read_text())["model_type"] == "llama"


def test_allowed_directories_need_distinct_names(tmp_path):
    from tinker_chief.errors import ConfigurationError
    from tinker_chief.models import LocalModelDirs

    for parent in ("a", "b"):
        (tmp_path / parent / "llama").mkdir(parents=True)
        (tmp_path / parent / "llama" / "config.json").write_text("{}")
    with pytest.raises(ConfigurationError, match="its name 'llama' is already taken"):
        LocalModelDirs.allow([tmp_path / "a" / "llama", tmp_path / "b" / "llama"])
    served = LocalModelDirs.allow([tmp_path / "a" / "llama"])
    assert resolve_model("LLAMA", served).local_dir == (tmp_path / "a" / "llama").resolve()
    with pytest.raises(ModelNotFoundError, match="available models are .*llama, or a hub id"):
        resolve_model(str(tmp_path / "b" / "llama"), served)


def test_a_broken_tokenizer_file_is_refused_before_transformers_loads(tmp_path):
    """The files are checked first: a broken one costs no transformers import (seconds)."""
    model = tmp_path / "model"
    shutil.copytree(materialize_model(TINY_MODEL), model)
    (model / "tokenizer_config.json").write_text("[1, 2]")
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from tinker_chief.models import load_tokenizer\n"
            "try:\n    load_tokenizer(sys.argv[1])\nexcept Exception as exc:\n    print(exc)\n"
            "print(sorted({'transformers', 'torch'} & set(sys.modules)))",
            str(model),
        ],
        capture_output=True,
        text=True,
    )
    assert probe.returncode == 0, probe.stderr
    error = f"{model}/tokenizer_config.json: expected a JSON object, got list"
    assert probe.stdout.splitlines() == [error, "[]"]
