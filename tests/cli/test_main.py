"""The CLI's error boundary: library errors print one line and exit non-zero, never a traceback."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest

from tinker_chief.cli import main as cli_main
from tinker_chief.errors import ConfigurationError, PromotionRejected

from cli_support import CHIEF_COMMAND


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CHIEF_COMMAND, *argv], capture_output=True, text=True)


def test_help_lists_every_command_without_importing_torch():
    result = _run(["--help"])
    assert result.returncode == 0
    for name in cli_main.COMMANDS:
        assert name in result.stdout
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from tinker_chief.cli.main import cli; "
            "cli.main(['--help'], standalone_mode=False); print('torch' in sys.modules)",
        ],
        capture_output=True,
        text=True,
    )
    assert probe.stdout.strip().endswith("False")


def test_every_registered_command_imports():
    ctx = click.Context(cli_main.cli)
    for name in cli_main.COMMANDS:
        assert isinstance(cli_main.cli.get_command(ctx, name), click.Command), name


@pytest.mark.parametrize(
    ("error", "code", "lines"),
    [
        (
            ConfigurationError("chief.toml: field `lora.rank`: expected a positive integer"),
            1,
            ["lora.rank"],
        ),
        (
            PromotionRejected("refused", ["eval stale: custom_qa", "safety below threshold"]),
            3,
            ["eval stale: custom_qa", "safety below threshold"],
        ),
    ],
)
def test_chief_errors_become_one_line_and_exit_code(monkeypatch, capsys, error, code, lines):
    @click.command()
    def boom() -> None:
        raise error

    monkeypatch.setitem(cli_main.COMMANDS, "boom", "tests_boom:boom")
    monkeypatch.setitem(sys.modules, "tests_boom", type(sys)("tests_boom"))
    sys.modules["tests_boom"].boom = boom
    with pytest.raises(SystemExit) as exit_info:
        cli_main.main(["boom"])
    assert exit_info.value.code == code
    err = capsys.readouterr().err
    assert err.startswith("Error: ") and "Traceback" not in err
    for line in lines:
        assert line in err


def test_unknown_command_is_a_usage_error():
    result = _run(["no-such-command"])
    assert result.returncode == 2 and "No such command" in result.stderr
