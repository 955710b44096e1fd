"""A hostile or broken hub, and hostile model files, never hurt the user.

`chief models fetch` and `chief init` run as a user runs them (subprocesses) against the stand-in
hub (hub_support) made hostile: an ETag or X-Repo-Commit that climbs out of the cache, an
oversize file (with and without Content-Length), a server that drips one byte at a time, a repo
whose tokenizer or config is its own Python code. Broken files (nested 100,000 deep, a list where
an object belongs, binary) come from the hub and from a local model directory. Every case ends
in one `Error:` line and a non-zero exit, with nothing written outside the cache (nor into it),
no project directory, and no traceback. HOME is the test's own, so a file a hostile hub plants
there (`usercustomize.py`, which the next Python start would run) is seen."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tinker_chief.models import TINY_MODEL
from tinker_chief.models.hub import HubFiles

from cli_support import assert_one_line_error, run_chief
from hub_support import hub_stand_in, online_env, stand_in_files
from jsonl_support import write_jsonl

MODEL = "Some/Model"
CACHE = "hub"  # the HF cache, under tmp_path
# Under HOME: every Python start runs it.
PLANTED = ".local/lib/python3.11/site-packages/usercustomize.py"
NESTED = b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
BINARY = b"\x00\xff\xfe\x00not text"
# A tokenizer whose class is the repo's own code; importing it leaves a mark in HOME.
CUSTOM_CODE = b"""
import os
from pathlib import Path

from transformers import PreTrainedTokenizerFast

Path(os.environ["HOME"], "custom-code-ran").write_text("yes")


class CustomTokenizer(PreTrainedTokenizerFast):
    pass
"""


def _files() -> dict[str, bytes]:
    return stand_in_files(TINY_MODEL)


def _tokenizer_config(**changes: object) -> bytes:
    settings = json.loads(_files()["tokenizer_config.json"])
    return json.dumps({**settings, **changes}).encode()


def _custom_code_files() -> dict[str, bytes]:
    auto_map = {"AutoTokenizer": [None, "tokenization_custom.CustomTokenizer"]}
    settings = _tokenizer_config(tokenizer_class="CustomTokenizer", auto_map=auto_map)
    return {**_files(), "tokenizer_config.json": settings, "tokenization_custom.py": CUSTOM_CODE}


def _every_file(root: Path) -> set[Path]:
    return {path for path in root.rglob("*") if path.is_file()}


def _chief(tmp_path: Path, hub, *args: str, env: dict[str, str | None] | None = None):
    """`chief ARGS` against `hub`, with the cache and HOME under tmp_path."""
    environment = {**online_env(hub, tmp_path / CACHE, tmp_path / "home"), **(env or {})}
    return run_chief(*args, env=environment, timeout=90)


def _fetch(tmp_path: Path, hub, *flags: str, env: dict[str, str | None] | None = None):
    """`chief models fetch`, its stderr without the progress lines (`fetching ...`, `  file`)
    that come before any error."""
    result = _chief(tmp_path, hub, "models", "fetch", MODEL, *flags, env=env)
    lines = result.stderr.splitlines()
    if lines and lines[0].startswith(f"fetching {MODEL}'s config"):
        lines = lines[1:]
    while lines and lines[0].startswith("  ") and not lines[0].startswith("  File "):
        lines = lines[1:]
    stderr = "\n".join(lines)
    return subprocess.CompletedProcess(result.args, result.returncode, result.stdout, stderr)


def _init(tmp_path: Path, hub, model: str = MODEL, *flags: str):
    train = tmp_path / "train.jsonl"
    return _chief(
        tmp_path, hub, "init", "-p", str(tmp_path / "p"), "--use-case", "chat",
        "--base-model", model, "--train", str(train), *flags,
    )  # fmt: skip


def _chat(i: int) -> dict:
    return {
        "messages": [
            {"role": "user", "content": f"word {i}?"},
            {"role": "assistant", "content": f"w{i}"},
        ]
    }


def _files_before(tmp_path: Path) -> set[Path]:
    """Every file under tmp_path once the training data `_init` uses is written."""
    write_jsonl(tmp_path / "train.jsonl", [_chat(i) for i in range(30)])
    return _every_file(tmp_path)


def _assert_nothing_written(tmp_path: Path, before: set[Path]) -> None:
    """No file appeared anywhere under tmp_path: not in HOME, not in the cache, no project."""
    assert _every_file(tmp_path) - before == set()
    assert not (tmp_path / "home" / PLANTED).exists()
    assert not (tmp_path / "p").exists()


def _climbing_to(target: Path) -> str:
    """A relative path that, joined to any directory of the cache, names `target`."""
    return "../" * 40 + str(target).lstrip("/")


def test_an_etag_that_climbs_out_of_the_cache_writes_nothing(tmp_path):
    planted = tmp_path / "home" / PLANTED
    with hub_stand_in({MODEL: _files()}, etag=_climbing_to(planted)) as hub:
        before = _files_before(tmp_path)
        fetched = _fetch(tmp_path, hub)
    assert_one_line_error(fetched, f"the hub ({hub.url}) answered", "ETag", "expected a plain hash")
    _assert_nothing_written(tmp_path, before)


@pytest.mark.parametrize("command", ["fetch", "init"])
def test_a_repo_commit_that_climbs_out_of_the_cache_writes_nothing(tmp_path, command):
    climbing = _climbing_to(tmp_path / "home" / "planted")
    with hub_stand_in({MODEL: _files()}, repo_commit=climbing) as hub:
        before = _files_before(tmp_path)
        result = _fetch(tmp_path, hub) if command == "fetch" else _init(tmp_path, hub)
    assert_one_line_error(result, "X-Repo-Commit", "expected the commit of", "(40 hex digits)")
    _assert_nothing_written(tmp_path, before)
    assert not (tmp_path / "home" / "planted").exists()


@pytest.mark.parametrize("send_length", [True, False], ids=["with-content-length", "without"])
def test_an_oversize_config_is_refused(tmp_path, send_length):
    oversize = json.dumps({"hidden_size": 64, "padding": "x" * (5 << 20)})  # a config is KBs
    files = {**_files(), "config.json": oversize.encode()}
    with hub_stand_in({MODEL: files}, send_length=send_length) as hub:
        before = _files_before(tmp_path)
        fetched = _fetch(tmp_path, hub)
    most = "the most chief accepts for a model's config.json"
    assert_one_line_error(fetched, f"/config.json: larger than 4 MiB, {most}")
    _assert_nothing_written(tmp_path, before)


def test_a_hub_that_drips_is_stopped_at_the_deadline(tmp_path):
    # One byte every 0.2 s: the file list alone takes minutes, and no read ever times out.
    with hub_stand_in({MODEL: _files()}, drip_s=0.2) as hub:
        before = _files_before(tmp_path)
        fetched = _fetch(tmp_path, hub, env={"CHIEF_HUB_TIMEOUT": "2"})
    late = f"the hub ({hub.url}) did not finish answering within 2 s (raise CHIEF_HUB_TIMEOUT"
    assert_one_line_error(fetched, late)
    _assert_nothing_written(tmp_path, before)


def test_a_deadline_that_is_no_number_of_seconds_is_one_error_line(tmp_path):
    with hub_stand_in({MODEL: _files()}) as hub:
        fetched = _fetch(tmp_path, hub, env={"CHIEF_HUB_TIMEOUT": "soon"})
    assert_one_line_error(
        fetched, "CHIEF_HUB_TIMEOUT='soon': expected a positive number of seconds"
    )
    assert hub.requests == []


@pytest.mark.parametrize("command", ["fetch", "init"])
def test_a_model_s_own_code_is_refused_without_trust_remote_code(tmp_path, command):
    with hub_stand_in({MODEL: _custom_code_files()}) as hub:
        before = _files_before(tmp_path)
        result = _fetch(tmp_path, hub) if command == "fetch" else _init(tmp_path, hub)
    assert_one_line_error(
        result,
        "Some/Model: tokenizer_config.json's auto_map names the model's own Python code "
        "(tokenization_custom.CustomTokenizer)",
        "pass --trust-remote-code",
    )
    _assert_nothing_written(tmp_path, before)
    assert not (tmp_path / "home" / "custom-code-ran").exists()


def test_a_config_that_is_its_own_code_is_refused(tmp_path):
    config = {
        "model_type": "custom_thing",
        "auto_map": {"AutoConfig": "configuration_custom.CustomConfig"},
    }
    with hub_stand_in({MODEL: {**_files(), "config.json": json.dumps(config).encode()}}) as hub:
        before = _files_before(tmp_path)
        fetched = _fetch(tmp_path, hub)
    own_code = "config.json's auto_map names the model's own Python code"
    assert_one_line_error(fetched, own_code, "--trust-remote-code")
    _assert_nothing_written(tmp_path, before)


def test_trust_remote_code_fetches_the_code_and_init_runs_it(tmp_path):
    with hub_stand_in({MODEL: _custom_code_files()}) as hub:
        _files_before(tmp_path)
        fetched = _fetch(tmp_path, hub, "--trust-remote-code")
        assert fetched.returncode == 0, fetched.stderr
        assert "tokenization_custom.py" in fetched.stdout
        assert not (tmp_path / "home" / "custom-code-ran").exists()  # fetched, not run
        made = _init(tmp_path, hub, MODEL, "--trust-remote-code")
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "home" / "custom-code-ran").read_text() == "yes"
    assert "trust_remote_code = true" in (tmp_path / "p" / "chief.toml").read_text()


TOKENIZER_CONFIG = "tokenizer_config.json"
# case: (file, its content, what the error says after the file's name)
BROKEN = {
    "nested-config": ("config.json", NESTED, ": invalid JSON (nested too deeply)"),
    "tokenizer-config-list": (TOKENIZER_CONFIG, b"[1, 2]", ": expected a JSON object, got list"),
    "nested-tokenizer-config": (TOKENIZER_CONFIG, NESTED, ": invalid JSON (nested too deeply)"),
    "binary-tokenizer-config": (TOKENIZER_CONFIG, BINARY, ":1: not UTF-8 (byte 0xff"),
    "binary-chat-template": ("chat_template.jinja", BINARY, ":1: not UTF-8 (byte 0xff"),
}


@pytest.mark.parametrize("case", list(BROKEN))
@pytest.mark.parametrize("source", ["hub", "local"])
def test_a_broken_model_file_is_one_error_line_and_no_project(tmp_path, case, source):
    name, content, error = BROKEN[case]
    files = {**_files(), name: content}
    local = tmp_path / "model"
    local.mkdir()
    for file_name, data in files.items():
        (local / file_name).write_bytes(data)
    with hub_stand_in({MODEL: files}) as hub:
        before = _files_before(tmp_path)
        made = _init(tmp_path, hub, MODEL if source == "hub" else str(local))
    assert_one_line_error(made, name + error)
    _assert_nothing_written(tmp_path, before)


@pytest.fixture
def resolver(monkeypatch):
    """The OS resolver of this process, faked for names under `.test`: `resolver["x.test"] =
    "127.0.0.1"` makes x.test that address, and a name left out never answers (its lookup waits,
    up to 60 s, until the test ends). A DNS server that never answers cannot exist here."""
    import socket
    import threading

    released = threading.Event()
    resolve = socket.getaddrinfo
    names: dict[str, str] = {}

    def faked(host, *args, **kwargs):
        if isinstance(host, str) and host.endswith(".test"):
            if host in names:
                return resolve(names[host], *args, **kwargs)
            released.wait(60)
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        return resolve(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", faked)
    yield names
    released.set()


def _fetch_in_process(monkeypatch, endpoint: str, timeout_s: str) -> HubFiles:
    """`models.hub.fetch(MODEL)` in this process (where `resolver` is faked) from `endpoint`."""
    from huggingface_hub import constants

    from tinker_chief.models.hub import fetch

    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("CHIEF_HUB_TIMEOUT", timeout_s)
    return fetch(MODEL)


def test_a_dns_server_that_never_answers_is_stopped_at_the_deadline(monkeypatch, resolver):
    """The lookup of the hub's host name counts against CHIEF_HUB_TIMEOUT: httpx's timeouts do
    not cover it."""
    from tinker_chief.models.hub import HubFilesMissingError

    with pytest.raises(HubFilesMissingError) as raised:
        _fetch_in_process(monkeypatch, "http://hub.test:9", "0.5")
    message = str(raised.value)
    assert "the hub (http://hub.test:9) did not finish answering within 0.5 s" in message
    assert "looking up hub.test had no answer" in message and "\n" not in message


def test_a_cdn_the_hub_redirects_to_is_looked_up_before_the_deadline(
    tmp_path, monkeypatch, resolver
):
    """The hub sends a large file (a Qwen tokenizer.json) on to its CDN: the lookup of that host
    counts against CHIEF_HUB_TIMEOUT too, and the CDN is never sent the user's token."""
    from tinker_chief.models.hub import HubFilesMissingError

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / CACHE))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / CACHE))
    monkeypatch.setenv("HF_TOKEN", "hf_user_secret_token")
    with hub_stand_in({MODEL: _files()}, cdn_host="cdn.test") as hub:
        resolver["hub.test"] = "127.0.0.1"
        endpoint = f"http://hub.test:{urlsplit(hub.url).port}"
        with pytest.raises(HubFilesMissingError) as raised:
            _fetch_in_process(monkeypatch, endpoint, "1")
        message = str(raised.value)
        assert "did not finish answering within 1 s" in message
        assert "looking up cdn.test had no answer" in message
        assert not (tmp_path / CACHE / "models--Some--Model").exists()  # nothing installed

        resolver["cdn.test"] = "127.0.0.1"  # now the CDN answers: every file comes through it
        fetched = _fetch_in_process(monkeypatch, endpoint, "30")
    assert fetched.fetched and "tokenizer.json" in fetched.names
    assert (fetched.directory / "config.json").read_bytes() == _files()["config.json"]
    through_cdn = [line for line in hub.requests if line.startswith("GET /cdn/")]
    assert f"GET /cdn/{MODEL}/config.json" in through_cdn
    assert "the CDN was sent the Authorization header" not in hub.requests
