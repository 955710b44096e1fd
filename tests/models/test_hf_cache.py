"""Built-ins load by name through `transformers`, as the cookbook loads tokenizers, offline."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from tinker_chief.models import (
    DEFAULT_MODEL,
    TINY_MODEL,
    hf_cache,
    load_tokenizer,
    materialize_model,
    resolve_model,
)

# A process that never imports chief: only the cookbook's own tokenizer loading.
COOKBOOK_LOAD = """
import sys
from tinker_cookbook.tokenizer_utils import get_tokenizer
for name in sys.argv[1:]:
    tokenizer = get_tokenizer(name)
    text = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)
    print(name, len(tokenizer), repr(text))
"""


def _run(code: str, *args: str, hub_cache) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "HF_HUB_CACHE": str(hub_cache),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    return subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=300
    )


def test_materialized_builtins_load_by_name_in_a_plain_cookbook_process(tmp_path):
    hub = tmp_path / "hub"
    before = _run(COOKBOOK_LOAD, TINY_MODEL, hub_cache=hub)
    assert before.returncode != 0  # transformers alone cannot resolve our names

    made = _run(
        "from tinker_chief.models import materialize_model\n"
        f"materialize_model({TINY_MODEL!r}); materialize_model({DEFAULT_MODEL!r})",
        hub_cache=hub,
    )
    assert made.returncode == 0, made.stderr
    names = [
        TINY_MODEL,
        f"tinker-chief/{TINY_MODEL}",
        DEFAULT_MODEL,
        f"tinker-chief/{DEFAULT_MODEL}",
    ]
    loaded = _run(COOKBOOK_LOAD, *names, hub_cache=hub)
    assert loaded.returncode == 0, loaded.stderr
    # The same tokenizer, chat template included, as the engine's own (loaded from the directory).
    expected = []
    for name in names:
        tokenizer = load_tokenizer(name)
        text = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)
        expected.append(f"{name} {len(tokenizer)} {text!r}")
    assert loaded.stdout.splitlines() == expected
    assert expected[0].startswith(f"{TINY_MODEL} 259 ") and expected[2].startswith(
        f"{DEFAULT_MODEL} 491"
    )


def test_an_entry_whose_files_moved_is_rebuilt(tmp_path):
    from transformers import AutoTokenizer

    moved = tmp_path / "old-cache"
    shutil.copytree(materialize_model(TINY_MODEL), moved)
    hf_cache.register(TINY_MODEL, moved, hub_cache=tmp_path / "hub")
    shutil.rmtree(moved)  # the entry's links now dangle
    hf_cache.register(TINY_MODEL, materialize_model(TINY_MODEL), hub_cache=tmp_path / "hub")
    tokenizer = AutoTokenizer.from_pretrained(
        TINY_MODEL, cache_dir=tmp_path / "hub", local_files_only=True
    )
    assert len(tokenizer) == 259


def test_the_namespaced_name_is_the_builtin():
    assert resolve_model(f"tinker-chief/{TINY_MODEL}").name == TINY_MODEL
    assert resolve_model(f"Tinker-Chief/{DEFAULT_MODEL.lower()}").name == DEFAULT_MODEL
