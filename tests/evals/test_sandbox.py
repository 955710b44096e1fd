"""The code sandbox holds against malicious samples: files outside, network, outliving limits.

Runs the real bubblewrap sandbox (skipped only where bwrap is not installed).
"""

from __future__ import annotations

import shutil
import time

import pytest

from tinker_chief.evals.sandbox import SandboxLimits, run_python

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap not installed")


def test_runs_code_and_sees_its_own_files():
    result = run_python("import helper; print(helper.X * 2)", files={"helper.py": "X = 21"})
    assert result.ok and result.stdout.strip() == "42"


def test_cannot_read_a_file_outside_its_dir(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET")
    code = (
        "import os\n"
        f"for p in [{str(secret)!r}, '/etc/shadow', '/root/.bash_history']:\n"
        "    try:\n        print(open(p).read())\n"
        "    except OSError as e:\n        print('denied', type(e).__name__)\n"
        "print('ENV', sorted(k for k in os.environ if 'KEY' in k or 'TOKEN' in k))\n"
    )
    result = run_python(code)
    assert "TOPSECRET" not in result.stdout
    assert result.stdout.count("denied") == 3
    assert "ENV []" in result.stdout


def test_cannot_write_the_system(tmp_path):
    result = run_python("open('/usr/evil', 'w').write('x')")
    assert not result.ok and ("Read-only" in result.stderr or "Permission" in result.stderr)


def test_cannot_reach_the_network():
    code = (
        "import socket\n"
        "try:\n    socket.create_connection(('127.0.0.1', 22), timeout=2); print('CONNECTED')\n"
        "except OSError as e:\n    print('blocked', e.errno)\n"
        "print(sorted(n for _, n in socket.if_nameindex()))\n"
    )
    result = run_python(code)
    assert "CONNECTED" not in result.stdout and "blocked" in result.stdout
    assert "['lo']" in result.stdout  # a fresh network namespace: loopback only, nothing routed


def test_cannot_outlive_its_time_limit(tmp_path):
    marker = tmp_path / "escaped"
    # A daemonized grandchild tries to touch a host-visible path after the limit; the sandbox
    # dir is private, so it tries an absolute host path too (which it cannot see anyway).
    code = (
        "import os, time\n"
        "if os.fork() == 0:\n    os.setsid()\n"
        "    if os.fork() == 0:\n        time.sleep(3)\n"
        "        open('escaped_from_sandbox', 'w').write('x')\n"
        "        os._exit(0)\n    os._exit(0)\n"
        "while True: pass\n"
    )
    started = time.monotonic()
    result = run_python(code, limits=SandboxLimits(timeout_s=1.5, cpu_s=30))
    assert result.timed_out and not result.ok
    assert (
        time.monotonic() - started < 10
    )  # killed, not waited out (generous bound, not a benchmark)
    time.sleep(3.5)
    assert not marker.exists()
    import subprocess

    leftovers = subprocess.run(
        ["pgrep", "-f", "escaped_from_sandbox"], capture_output=True, text=True
    )
    assert leftovers.stdout.strip() == ""


def test_memory_limit_stops_a_hog():
    result = run_python(
        "x = bytearray(2_000_000_000)\nprint('allocated')", limits=SandboxLimits(memory_mb=256)
    )
    assert "allocated" not in result.stdout and "MemoryError" in result.stderr
