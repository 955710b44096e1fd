"""Bad flag and environment values are one `Error:` line and a non-zero exit, never a traceback
or a run on a value that cannot mean anything (found by trying bad input on every command)."""

from __future__ import annotations

import pytest

from cli_support import assert_one_line_error, run_chief
from jsonl_support import write_jsonl

TINY = "tiny-random-llama"


def assert_usage_error(result, *fragments: str) -> None:
    """click's usage error: exit 2, its `Usage:` lines, then one `Error:` line with `fragments`."""
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: Invalid value for") and all(f in last for f in fragments), last


@pytest.fixture(scope="module")
def qa(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("qa") / "qa.jsonl"
    return str(write_jsonl(path, [{"input": "What is 1+1?", "output": "2"}]))


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--temperature", "nan"], "'nan' is not a finite number"),
        (["--temperature", "inf"], "'inf' is not a finite number"),
        (["--seed", str(2**70)], "is not in the range"),
    ],
)
def test_eval_offline_refuses_flag_values_that_mean_nothing(qa, tmp_path, args, fragment):
    result = run_chief("eval-offline", "-m", TINY, "--data", qa, *args, cwd=tmp_path)
    assert_usage_error(result, args[0], fragment)


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--grader", "regex:pattern=("], ["grader `regex:pattern=(`: missing )"]),
        (["--grader", "numeric:tolerance=nan"], ["tolerance must be a finite number >= 0"]),
        (
            ["--base-url", "http://127.0.0.1:99999"],
            ["--base-url: expected a URL http(s)://host:port, got 'http://127.0.0.1:99999'"],
        ),
        (["--base-url", "http://[::1"], ["--base-url: expected a URL http(s)://host:port"]),
    ],
)
def test_eval_offline_refuses_a_grader_or_url_that_cannot_work(qa, tmp_path, args, fragments):
    result = run_chief(
        "eval-offline", "-m", TINY, "--data", qa, "-o", str(tmp_path / "out"), *args,
        cwd=tmp_path,
    )  # fmt: skip
    assert_one_line_error(result, *fragments)
    assert not (tmp_path / "out").exists()  # nothing sampled, nothing written


def test_engine_serve_refuses_a_port_past_65535(tmp_path):
    result = run_chief("engine", "serve", "--port", "99999", "--state-dir", str(tmp_path / "s"))
    assert_usage_error(result, "--port", "99999 is not in the range 0<=x<=65535")


def test_a_sweep_list_with_an_empty_item_is_a_typo_not_a_shorter_list(tmp_path):
    result = run_chief("sweep", "-p", str(tmp_path), "--lr-multipliers", "1,,2")
    assert_usage_error(result, "--lr-multipliers", "got '1,,2'")


@pytest.mark.parametrize("off", ["0", "false", "no"])
def test_chief_debug_set_to_off_keeps_errors_to_one_line(tmp_path, off):
    result = run_chief(
        "eval-offline", "-m", TINY, "--data", str(tmp_path / "missing.jsonl"),
        env={"CHIEF_DEBUG": off}, cwd=tmp_path,
    )  # fmt: skip
    assert_one_line_error(result, "missing.jsonl: file not found")  # and no traceback


def test_a_file_where_a_directory_belongs_is_refused_before_any_work(qa, tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory")
    offline = run_chief("eval-offline", "-m", TINY, "--data", qa, "-o", str(a_file), cwd=tmp_path)
    assert_one_line_error(offline, f"--output {a_file}: a file; expected a directory")
    serve = run_chief("engine", "serve", "--port", "0", "--state-dir", str(a_file), cwd=tmp_path)
    assert_one_line_error(serve, f"--state-dir {a_file}: a file; expected a directory")
    assert a_file.read_text() == "not a directory"


@pytest.mark.parametrize("host", ["8.8.8.8", "not..a..host"])
def test_engine_serve_refuses_a_host_this_machine_cannot_listen_on(tmp_path, host):
    key = "tml-" + "0123456789abcdefghijklmnopqrstuvwxyzABCD"  # strong enough for a remote bind
    result = run_chief(
        "engine", "serve", "--host", host, "--port", "0", "--state-dir", str(tmp_path / "s"),
        env={"CHIEF_ENGINE_API_KEY": key},
    )  # fmt: skip
    assert_one_line_error(result, f"--host '{host}': not an address this machine can listen on")
    assert key not in result.stderr and not (tmp_path / "s").exists()


def test_an_actor_with_a_control_character_is_refused_before_the_audit_log(tmp_path):
    result = run_chief(
        "registry", "gc", "-p", str(tmp_path), "--dry-run", env={"CHIEF_ACTOR": "alice\nbob"}
    )
    assert_usage_error(result, "--actor", "expected a printable name, got 'alice\\nbob'")
    assert not (tmp_path / ".chief").exists()


@pytest.mark.parametrize(
    ("name", "value"), [("HF_HUB_DOWNLOAD_TIMEOUT", "abc"), ("HF_HUB_ETAG_TIMEOUT", "-3")]
)
def test_a_hub_timeout_huggingface_hub_cannot_read_is_one_error(tmp_path, name, value):
    # huggingface_hub parses both with int() when it is imported: before chief read them first,
    # this was a ValueError traceback from inside the import.
    result = run_chief("models", "fetch", "org/model", env={name: value}, cwd=tmp_path)
    assert_one_line_error(result, f"{name}={value!r}: expected a whole number of seconds")


@pytest.mark.parametrize(
    ("directory", "flags", "fragment"),
    [
        ("proj", ["--name", "a/b:v3"], "project name 'a/b:v3' from --name: expected letters"),
        (
            "my project",
            [],
            "project name 'my project' from the directory's name (pass --name NAME): expected",
        ),
    ],
)
def test_init_refuses_a_name_the_registry_cannot_record_before_writing(
    tmp_path, directory, flags, fragment
):
    # The project's name is the one its checkpoints are registered under ('a/b:v3' would also
    # read as version 3 of 'a/b'); before, the first checkpoint's registration failed mid-run.
    chat = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    train = write_jsonl(tmp_path / "train.jsonl", [{"messages": chat}] * 4)
    project = tmp_path / directory
    init = ["init", "-p", str(project), "--use-case", "chat", "-m", TINY, "--train", str(train)]
    result = run_chief(*init, *flags)
    assert_one_line_error(result, fragment)
    assert not project.exists()


def test_a_key_given_where_a_name_belongs_is_not_echoed_in_the_error(tmp_path):
    # The error quotes the value the user gave; a pasted key must not reach the terminal.
    key = "tml-" + "Zz9" * 12
    chat = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    train = write_jsonl(tmp_path / "train.jsonl", [{"messages": chat}] * 4)
    project = tmp_path / "proj"
    init = ["init", "-p", str(project), "--use-case", "chat", "-m", TINY, "--train", str(train)]
    result = run_chief(*init, "--name", key)
    assert_one_line_error(result, "project name '[REDACTED]' from --name: expected a model name")
    assert key not in result.stderr + result.stdout
