"""A Hugging Face model directory's config and tokenizer files, read with one-line errors.

Whoever wrote them (a hub, a download, a person), chief reads a model's `config.json`,
`tokenizer_config.json`, chat template and other small settings files through here: bounded by
`limit(name)`, decoded as UTF-8, parsed as a JSON object where JSON is expected (`files.py`), so
a binary, huge or deeply nested file is one `Error: <file>: <what was expected>` line, never a
traceback. `check_tokenizer_files` runs those checks on the files `transformers` parses in Python
before it is handed the directory. `custom_code` says whether loading the model's tokenizer would
run the model's own Python code (an `auto_map`); chief runs it only when the user passed
`--trust-remote-code`, and otherwise stops with `CustomCodeRefused`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tinker_chief.errors import ChiefError, ConfigurationError, DataError
from tinker_chief.files import (
    MIB,
    decode_utf8,
    json_object,
    read_bytes,
    read_json_object,
    read_text,
)

CONFIG = "config.json"
TOKENIZER_CONFIG = "tokenizer_config.json"
CHAT_TEMPLATE = "chat_template.jinja"

# Each file kind's cap: far above any real model's file, far below what could fill memory or disk.
# config.json, generation_config.json, special_tokens_map.json and chat templates are KBs.
SETTINGS_LIMIT = 4 * MIB
# tokenizer_config.json and added_tokens.json may list every added token (Gemma 3's is ~1 MB).
TOKEN_LIST_LIMIT = 16 * MIB
# tokenizer.json reaches ~33 MB (Gemma 3; Llama 3's is 9 MB); vocab.json, merges.txt and a
# sentencepiece tokenizer.model are smaller.
VOCABULARY_LIMIT = 64 * MIB
# A model's own modules (fetched only with --trust-remote-code) are tens of KB.
CODE_LIMIT = 4 * MIB
_LIMITS = {
    TOKENIZER_CONFIG: TOKEN_LIST_LIMIT,
    "added_tokens.json": TOKEN_LIST_LIMIT,
    "tokenizer.json": VOCABULARY_LIMIT,
    "tokenizer.model": VOCABULARY_LIMIT,
    "vocab.json": VOCABULARY_LIMIT,
    "merges.txt": VOCABULARY_LIMIT,
}
# What transformers parses in Python (tokenizer.json goes to the Rust `tokenizers`, which has its
# own depth limit, and tokenizer.model to sentencepiece); each must be a JSON object.
_PYTHON_PARSED = (TOKENIZER_CONFIG, "special_tokens_map.json", "added_tokens.json", CONFIG)
_TEXT = (CHAT_TEMPLATE, "merges.txt")


class CustomCodeRefused(ConfigurationError):
    """Loading the model would run its own Python code, and the user did not pass
    --trust-remote-code."""


def limit(name: str) -> int:
    """The most bytes chief reads or downloads of the model file `name`."""
    if name.endswith(".py"):
        return CODE_LIMIT
    return _LIMITS.get(name, SETTINGS_LIMIT)


def check(name: str, data: bytes, where: str, *, error: type[ChiefError] = DataError) -> None:
    """`data`, the file `name` (shown as `where`: its path or URL), is what its kind must be: a
    JSON object for every `.json` file, UTF-8 text for the chat template and merges.txt."""
    if name.endswith(".json"):
        json_object(data, where, error=error)
    elif name in _TEXT:
        decode_utf8(data, where, error=error)


def read_object(
    directory: Path,
    name: str,
    *,
    error: type[ChiefError] = DataError,
) -> dict[str, Any] | None:
    """The JSON object in `directory/name`, or None when there is no such file."""
    path = Path(directory) / name
    return read_json_object(path, limit=limit(name), error=error) if path.is_file() else None


def read_config(directory: Path, *, error: type[ChiefError] = DataError) -> dict[str, object]:
    """The model's `config.json` as a dict."""
    return read_json_object(Path(directory) / CONFIG, limit=limit(CONFIG), error=error)


def chat_template(directory: Path) -> str | None:
    """The model's chat template: `chat_template.jinja`, else tokenizer_config.json's
    `chat_template` (a string, or a list of named templates whose `default` is taken)."""
    directory = Path(directory)
    jinja = directory / CHAT_TEMPLATE
    if jinja.is_file():
        return read_text(jinja, limit=limit(CHAT_TEMPLATE))
    template = (read_object(directory, TOKENIZER_CONFIG) or {}).get("chat_template")
    if isinstance(template, list):
        entries = [entry for entry in template if isinstance(entry, dict)]
        named = {entry.get("name"): entry.get("template") for entry in entries}
        template = named.get("default")
    if template is not None and not isinstance(template, str):
        raise DataError(
            f"{directory / TOKENIZER_CONFIG}: chat_template: expected a string or a list of "
            f"named templates, got {type(template).__name__}"
        )
    return template


def check_tokenizer_files(directory: Path) -> None:
    """Every small file `transformers` reads when it loads the tokenizer is readable: bounded,
    UTF-8, a JSON object (the error names the file and what was expected)."""
    directory = Path(directory)
    for name in (*_PYTHON_PARSED, CHAT_TEMPLATE):
        path = directory / name
        if path.is_file():
            check(name, read_bytes(path, limit=limit(name)), str(path))


def custom_code(directory: Path) -> str | None:
    """Where loading the model's tokenizer or config would run the model's own Python code, as
    "<file>'s auto_map names ... (<class>)", else None.

    An `auto_map` counts unless transformers has the class itself: tokenizer_config.json's when
    its `tokenizer_class` is not one of transformers' tokenizers, config.json's when its
    `model_type` is not one of transformers' models (DeepSeek-V3's config names its own code
    for a model type transformers knows: no code runs).
    """
    tokenizer = read_object(directory, TOKENIZER_CONFIG) or {}
    config = read_object(directory, CONFIG) or {}
    if tokenizer.get("auto_map") and not _transformers_tokenizer(tokenizer.get("tokenizer_class")):
        return _naming(TOKENIZER_CONFIG, tokenizer["auto_map"])
    if config.get("auto_map") and not _transformers_model_type(config.get("model_type")):
        return _naming(CONFIG, config["auto_map"])
    return None


def refuse_custom_code(model: str, directory: Path, trust_remote_code: bool) -> bool:
    """Whether transformers may run `model`'s own code (found in `directory`): False when it has
    none; raises `CustomCodeRefused` when it has some and the user did not trust it."""
    found = custom_code(directory)
    if found is not None and not trust_remote_code:
        raise CustomCodeRefused(
            f"{model}: {found}; chief runs no code that comes with a model unless you pass "
            "--trust-remote-code (read that code first)"
        )
    return found is not None


def offline(trust_remote_code: bool = False) -> dict[str, bool]:
    """`from_pretrained`'s arguments for local files only, telling transformers whether the
    model's own code may run: told either way, it never stops to ask on the terminal."""
    return {"local_files_only": True, "trust_remote_code": trust_remote_code}


def _naming(name: str, auto_map: object) -> str:
    classes = [value for value in _strings(auto_map) if value]
    shown = ", ".join(repr(value)[1:-1][:100] for value in classes[:2]) or "unreadable entries"
    return f"{name}'s auto_map names the model's own Python code ({shown})"


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for item in value.values() for text in _strings(item)]
    if isinstance(value, list):
        return [text for item in value for text in _strings(item)]
    return []


def _transformers_tokenizer(name: object) -> bool:
    if not isinstance(name, str) or not name:
        return False
    from transformers.models.auto.tokenization_auto import tokenizer_class_from_name

    try:
        return tokenizer_class_from_name(name) is not None
    except Exception:  # an odd name transformers cannot look up is no class of its own
        return False


def _transformers_model_type(model_type: object) -> bool:
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    return isinstance(model_type, str) and model_type in CONFIG_MAPPING_NAMES
