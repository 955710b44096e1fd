"""`chief engine serve` as a user runs it (exports are `chief export`: tests/publish)."""

from __future__ import annotations

import concurrent.futures
import re
import signal
import subprocess
import sys
import time

import httpx

from cli_support import CHIEF_COMMAND
from server_support import fb_body, raw_model, sft_datum, wait_for_url


def test_serve_prints_url_and_sigterm_fails_queued_work_then_exits_cleanly(tmp_path):
    command = [
        *CHIEF_COMMAND,
        "engine",
        "serve",
        "--port",
        "0",
        "--state-dir",
        str(tmp_path),
        "--device",
        "cpu",
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = wait_for_url(process)
        with httpx.Client(
            base_url=f"{url}/api/v1", timeout=60, headers={"X-API-Key": "tml-local"}
        ) as raw:
            model_id = raw_model(raw)
            big = [sft_datum([3 + i % 250 for i in range(1000)])] * 4
            ids = [
                raw.post("/forward_backward", content=fb_body(model_id, seq, big)).json()[
                    "request_id"
                ]
                for seq in range(1, 49)
            ]  # far more than 0.5 s of work on any CPU: the last is still queued
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                last = pool.submit(raw.post, "/retrieve_future", json={"request_id": ids[-1]})
                time.sleep(0.5)
                process.send_signal(signal.SIGTERM)
                answer = last.result(timeout=60)
            assert answer.status_code == 200, answer.text
            assert "shutting down" in answer.json()["error"]
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
    output = process.stdout.read()
    assert "Traceback" not in output


ENGINE_MODULE = [sys.executable, "-m", "tinker_chief.engine.server"]


def _flags(help_text: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", help_text))


def test_the_engine_process_takes_exactly_the_flags_of_chief_engine_serve(tmp_path):
    """The launcher's `python -m tinker_chief.engine.server` and `chief engine serve` are one
    command: the same flags, and the same refusal of a bad value, before anything loads."""
    served = subprocess.run(
        [*CHIEF_COMMAND, "engine", "serve", "--help"], capture_output=True, text=True
    )
    process = subprocess.run([*ENGINE_MODULE, "--help"], capture_output=True, text=True)
    assert served.returncode == process.returncode == 0, served.stderr + process.stderr
    assert "--sampling-memory-gib" in _flags(served.stdout)
    assert _flags(process.stdout) == _flags(served.stdout)
    bad = ["--state-dir", str(tmp_path), "--session-timeout", "0"]
    refusals = [
        subprocess.run([*command, *bad], capture_output=True, text=True, timeout=120)
        for command in ([*CHIEF_COMMAND, "engine", "serve"], ENGINE_MODULE)
    ]
    for refused in refusals:
        assert refused.returncode == 2, refused.stderr
        assert "Invalid value for '--session-timeout'" in refused.stderr
        assert "Traceback" not in refused.stderr
    assert not list(tmp_path.iterdir())  # refused before the state directory was touched


def test_ensure_engine_reuses_a_running_engine_without_owning_it(engine, tmp_path):
    from tinker_chief.engine.server.launcher import engine_is_up, ensure_engine

    with ensure_engine(engine.base_url, state_dir=tmp_path) as reused:
        assert reused.base_url == engine.base_url and not reused.owned
    assert engine_is_up(engine.base_url)  # leaving the block did not stop someone else's engine
    assert not engine_is_up("http://127.0.0.1:9")  # nothing listens there


PARENT_SCRIPT = """
import sys, time
from pathlib import Path
from tinker_chief.engine.server.launcher import start_engine
handle = start_engine(state_dir=Path(sys.argv[1]))
print(handle.process.pid, flush=True)
time.sleep(600)
"""


def test_engine_exits_when_the_process_that_launched_it_is_killed(tmp_path):
    import os

    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT_SCRIPT, str(tmp_path / "state")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        engine_pid = int(parent.stdout.readline())
        parent.send_signal(signal.SIGKILL)  # like `chief train` killed with kill -9
        parent.wait()
        deadline = time.monotonic() + 120  # a bound on the wait, not a timing assertion
        while time.monotonic() < deadline:
            try:
                os.kill(engine_pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.5)
        else:
            os.kill(engine_pid, signal.SIGKILL)
            raise AssertionError("the engine outlived the process that launched it")
    finally:
        if parent.poll() is None:
            parent.kill()


def test_the_package_exports_the_launcher_without_loading_torch():
    """`tinker_chief.engine.server` names its public API (the launcher and `chief engine serve`),
    and importing it, as every command that may start an engine does, loads no torch."""
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, tinker_chief.engine.server as server; "
            "from tinker_chief.engine.server import launcher; "
            "assert server.start_engine is launcher.start_engine; "
            "print(sorted(server.__all__), 'torch' in sys.modules, 'transformers' in sys.modules)",
        ],
        capture_output=True,
        text=True,
    )
    assert probe.returncode == 0, probe.stderr
    listed = "['EngineHandle', 'engine_is_up', 'engine_key', 'engine_stats', 'ensure_engine', "
    assert probe.stdout.strip() == listed + "'serve_command', 'start_engine'] False False"
