"""Broken input files give one `Error: <file>:<line>: <what>` line and a non-zero exit, never a
traceback, through the real `chief` entry point.

JSONL that is not UTF-8, UTF-16, random bytes, nested 100,000 deep, holding a 5,000-digit
number, or endless (`/dev/zero`) in `init`, `plan` and `eval-offline`; a binary or too deeply
nested `chief.toml` in every command that reads one; a corrupt `run.json` or `plan.json` or an
invalid `chief.toml` in `chief report` (`chief export --dir` into a path that is not a directory:
tests/publish).
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest

from cli_support import assert_one_line_error
from cli_support import run_chief as chief

TINY = "tiny-random-llama"
ROWS = "".join(
    json.dumps(
        {
            "messages": [
                {"role": "user", "content": f"q{i}"},
                {"role": "assistant", "content": f"a{i}"},
            ]
        }
    )
    + "\n"
    for i in range(30)
)

BAD_JSONL = {
    "not-utf8": (
        b'{"messages": "caf\xe9"}\n',
        r"bad\.jsonl:1: not UTF-8 \(byte 0xe9 at column 18\)",
    ),
    "utf16": (
        '{"input": "a", "output": "b"}\n'.encode("utf-16"),
        r"bad\.jsonl:1: .*looks like UTF-16",
    ),
    "random-bytes": (random.Random(17).randbytes(4096), r"bad\.jsonl:\d+: "),
    "deep-nesting": (
        b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n",
        r"bad\.jsonl:1: invalid JSON \(nested too deeply\)",
    ),
    "huge-integer": (
        b'{"a": ' + b"9" * 5000 + b"}\n",
        r"bad\.jsonl:1: invalid JSON \(.*4300 digits.*5000 digits\)",
    ),
}
BAD_TOML = {
    "binary": (
        bytes(range(256)) * 4,
        r"chief\.toml:2: not UTF-8 \(byte 0x80 at column 118\)",
    ),  # after b"\n" (10)
    "deep-nesting": (
        b"name = " + b"[" * 100_000 + b"]" * 100_000 + b"\n",
        r"chief\.toml: invalid TOML \(nested too deeply\)",
    ),
}


@pytest.fixture(scope="module")
def made_project(tmp_path_factory) -> Path:
    """One `chief init` project (the tiny model's tokenizer loads once for the module)."""
    root = tmp_path_factory.mktemp("made")
    (root / "train.jsonl").write_text(ROWS)
    created = chief(
        "init",
        "-p",
        "proj",
        "--use-case",
        "chat",
        "--base-model",
        TINY,
        "--train",
        "train.jsonl",
        cwd=root,
    )
    assert created.returncode == 0, created.stderr
    return root / "proj"


@pytest.fixture
def project(made_project, tmp_path) -> Path:
    copy = tmp_path / "proj"
    shutil.copytree(made_project, copy)
    return copy


def _jsonl_command(command: str, bad: Path, project: Path) -> list[str]:
    if command == "init":
        return [
            "init",
            "-p",
            "new",
            "--use-case",
            "chat",
            "--base-model",
            TINY,
            "--train",
            str(bad),
        ]
    if command == "plan":
        shutil.copy(bad, project / "data" / "train.jsonl")
        return ["plan", "-p", str(project)]
    return ["eval-offline", "--base-model", TINY, "--data", str(bad)]


@pytest.mark.parametrize("command", ["init", "plan", "eval-offline"])
@pytest.mark.parametrize("kind", list(BAD_JSONL))
def test_broken_jsonl_is_one_line_error(command, kind, project, tmp_path):
    content, pattern = BAD_JSONL[kind]
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(content)
    if command == "plan":
        pattern = pattern.replace(r"bad\.jsonl", r"data/train\.jsonl")
    assert_one_line_error(
        chief(*_jsonl_command(command, bad, project), cwd=tmp_path), pattern=pattern
    )


@pytest.mark.parametrize("command", ["init", "eval-offline"])
def test_endless_input_is_cut_off(command, project, tmp_path):
    result = chief(*_jsonl_command(command, Path("/dev/zero"), project), cwd=tmp_path)
    assert_one_line_error(
        result, pattern=r"/dev/zero:1: line longer than 16 MiB; expected one JSON object per line"
    )


PROJECT_COMMANDS = {
    "plan": ["plan", "-p", "{p}"],
    "train": ["train", "--project", "{p}"],
    "eval": ["eval", TINY, "--project", "{p}"],
    "registry list": ["registry", "list", "--project", "{p}"],
    "registry show": ["registry", "show", "bot", "--project", "{p}"],
    "registry export": ["registry", "export", "--project", "{p}"],
    "compare": ["compare", "a", "b", "--project", "{p}"],
    "promote": ["promote", "bot", "--to", "prod", "--project", "{p}"],
    "retire": ["retire", "bot", "--project", "{p}"],
    "report": ["report", "--project", "{p}"],
    "playground": ["playground", "--project", "{p}", "--no-browser"],
    "playground --export": ["playground", "--project", "{p}", "--export", "site"],
    "export": ["export", "bot", "--project", "{p}"],
    "publish": ["publish", "bot", "--repo", "org/bot", "--project", "{p}"],
}


@pytest.mark.parametrize("command", list(PROJECT_COMMANDS))
@pytest.mark.parametrize("kind", list(BAD_TOML))
def test_broken_chief_toml_in_every_command(command, kind, tmp_path):
    content, pattern = BAD_TOML[kind]
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "chief.toml").write_bytes(content)
    args = [a.format(p="proj") for a in PROJECT_COMMANDS[command]]
    assert_one_line_error(chief(*args, cwd=tmp_path), pattern=pattern)


def test_demo_refuses_a_directory_with_a_binary_chief_toml(tmp_path):
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "chief.toml").write_bytes(BAD_TOML["binary"][0])
    result = chief("demo", "-p", "demo", cwd=tmp_path)
    assert_one_line_error(
        result, pattern=r"--project \S*demo: exists and is not a chief demo project"
    )
    assert (tmp_path / "demo" / "chief.toml").read_bytes() == BAD_TOML["binary"][0]


def test_report_names_the_broken_file(project, tmp_path):
    run = project / ".chief" / "runs" / "run-1"
    run.mkdir(parents=True)
    (run / "run.json").write_bytes(b"\xff\xfe{\x00}\x00")
    assert_one_line_error(
        chief("report", "--project", str(project), cwd=tmp_path),
        pattern=r"run-1/run\.json:1: not UTF-8 .*looks like UTF-16",
    )
    (run / "run.json").write_text('{"status": "finished"' + "\n" * 3 + ", nope}")
    assert_one_line_error(
        chief("report", "--project", str(project), cwd=tmp_path),
        pattern=r"run-1/run\.json:4: invalid JSON "
        r"\(Expecting property name enclosed in double quotes",
    )
    (run / "run.json").write_text('{"status": "finished"}')
    # A torn last metrics line (a crash mid-write) is skipped, as training itself does.
    (run / "metrics.jsonl").write_bytes(
        b'{"step": 1, "train/loss": 2.5}\n{"step": 2, "train/lo\xe2\x82'
    )
    (project / "plan.json").write_text("{\n" + '"a": [1, 2,' * 3)
    assert_one_line_error(
        chief("report", "--project", str(project), cwd=tmp_path),
        pattern=r"proj/plan\.json:2: invalid JSON",
    )
    (project / "plan.json").unlink()
    written = chief("report", "--project", str(project), cwd=tmp_path)
    assert written.returncode == 0, written.stderr
    with (project / "chief.toml").open("a") as handle:
        handle.write("\nbroken = = 1\n")
    lines = (project / "chief.toml").read_text().count("\n")
    assert_one_line_error(
        chief("report", "--project", str(project), cwd=tmp_path),
        pattern=rf"proj/chief\.toml:{lines}: invalid TOML \(Invalid value at column 10\)",
    )


def test_train_resume_names_a_broken_run_json(project, tmp_path):
    run = project / ".chief" / "runs" / "run-1"
    run.mkdir(parents=True)
    (run / "run.json").write_text('{"status": "interrupted",\n"nope"}')
    assert_one_line_error(
        chief("train", "--project", str(project), "--resume", cwd=tmp_path),
        pattern=r"run-1/run\.json:2: invalid JSON",
    )
