"""The code sandbox's limits hold for the sandbox as a whole, not per process, and the Inspect
`chief` sandbox runs a bounded number of commands at once, whatever the number of samples.

Runs the real bubblewrap sandbox. Sizes are small (at most a few hundred MB, briefly).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import anyio
import pytest

from tinker_chief.evals.inspect_sandbox import ChiefSandboxEnvironment
from tinker_chief.evals.sandbox import SandboxLimits, run_python

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap not installed")


def test_a_fork_bomb_stops_at_the_process_limit():
    code = (
        "import os, time\n"
        "forked = 0\n"
        "for _ in range(40):\n"
        "    try:\n        pid = os.fork()\n"
        "    except OSError as e:\n        print('fork refused', e.errno); break\n"
        "    if pid == 0:\n        time.sleep(3); os._exit(0)\n"
        "    forked += 1\n"
        "print('forked', forked)\n"
    )
    result = run_python(code, limits=SandboxLimits(max_processes=8))
    assert result.ok, result.stderr
    assert "fork refused" in result.stdout
    forked = int(result.stdout.split("forked")[-1])
    assert forked < 8  # bwrap's init and main.py count too


def test_memory_limit_counts_every_process_together():
    # Four children of 100 MB each, every one far under the per-process limit, 400 MB together.
    code = (
        "import os, sys, time\n"
        "ready_r, ready_w = os.pipe()\n"
        "for _ in range(4):\n"
        "    if os.fork() == 0:\n"
        "        block = b'x' * (100 << 20); os.write(ready_w, b'1'); time.sleep(6); os._exit(0)\n"
        "for _ in range(4):\n    os.read(ready_r, 1)\n"
        "print('all allocated', flush=True)\n"
        "time.sleep(5)\n"
        "print('survived')\n"
    )
    result = run_python(code, limits=SandboxLimits(memory_mb=256, timeout_s=20))
    assert "survived" not in result.stdout
    assert result.out_of_memory and not result.timed_out and not result.ok
    assert "more than 256 MB together" in result.stderr


def test_memory_that_no_process_holds_cannot_be_made():
    # SysV shared memory, semaphores and message queues, and memfds, live in the kernel, outside
    # every process's PSS (a memfd or segment nobody maps): the sandbox refuses to create them.
    code = (
        "import ctypes, errno, os, platform\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "libc.shmget.argtypes = [ctypes.c_int, ctypes.c_size_t, ctypes.c_int]\n"
        "def report(name, result):\n"
        "    print(name, 'made' if result >= 0 else errno.errorcode[ctypes.get_errno()])\n"
        "report('shmget', libc.shmget(0, 64 << 20, 0o1600))\n"
        "report('semget', libc.semget(0, 8, 0o1600))\n"
        "report('msgget', libc.msgget(0, 0o1600))\n"
        "try:\n    os.memfd_create('hoard'); print('memfd_create made')\n"
        "except OSError as e:\n    print('memfd_create', errno.errorcode[e.errno])\n"
        "if platform.machine() == 'x86_64':  # the x32 ABI numbers the same calls apart\n"
        "    report('x32 memfd_create', libc.syscall(0x40000000 | 319, b'hoard', 0))\n"
    )
    result = run_python(code)
    assert result.ok, result.stderr
    for call in ("shmget", "semget", "msgget", "memfd_create"):
        assert f"{call} EPERM" in result.stdout, result.stdout
    assert "made" not in result.stdout


def test_scratch_and_tmp_share_one_size_limit_and_nothing_else_is_writable():
    code = (
        "import os\n"
        "for path in ['/tmp/a', 'b', '/c', '/dev/d']:\n"
        "    try:\n"
        "        with open(path, 'wb') as f:\n"
        "            for _ in range(12):\n                f.write(b'x' * (1 << 20))\n"
        "        print('wrote', path)\n"
        "    except OSError as e:\n        print('refused', path, e.strerror)\n"
    )
    result = run_python(code, limits=SandboxLimits(scratch_mb=16, max_file_mb=64))
    assert result.ok, result.stderr
    assert "wrote /tmp/a" in result.stdout
    assert "refused b No space left on device" in result.stdout  # 12 + 12 MB > 16 MB
    assert "refused /c Read-only file system" in result.stdout
    assert "refused /dev/d Read-only file system" in result.stdout


def test_output_is_read_with_a_cap_never_buffered_whole():
    # The caller runs in its own process so its peak memory is measurable.
    caller = (
        "import json, resource\n"
        "from tinker_chief.evals.sandbox import SandboxLimits, run_python\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "code = 'import os\\nfor _ in range(300):\\n    os.write(1, b\"x\" * (1 << 20))\\n'\n"
        "result = run_python(code, limits=SandboxLimits(max_output_bytes=1000))\n"
        "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(json.dumps({'ok': result.ok, 'kept': len(result.stdout), "
        "'grew_kb': after - before}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", caller], capture_output=True, text=True, check=True
    )
    report = json.loads(done.stdout)
    assert report["ok"] and report["kept"] == 1000
    assert report["grew_kb"] < 50 * 1024  # 300 MB went through; the caller kept 1 KB


def test_samples_hold_sandboxes_freely_and_commands_run_two_at_a_time():
    """Inspect holds a sample's sandbox for the sample's whole life, generation included, so the
    `chief` sandbox sets no cap on samples (a cap made code evals generate two answers at a
    time); its commands, over all samples, run at most `MAX_COMMANDS` at once."""
    from tinker_chief.evals.inspect_sandbox import MAX_COMMANDS

    assert ChiefSandboxEnvironment.default_concurrency() is None
    # Each command runs a second: long enough that two let in together overlap however slowly a
    # loaded machine starts them.
    stamp = "import time; print(time.monotonic()); time.sleep(1.0); print(time.monotonic())"

    async def scenario() -> list[tuple[float, float]]:
        spans: list[tuple[float, float]] = []

        async def one_sample() -> None:
            (env,) = (await ChiefSandboxEnvironment.sample_init("t", None, {})).values()
            result = await env.exec(["python", "-c", stamp])
            assert result.success, result.stderr
            start, end = map(float, result.stdout.split())
            spans.append((start, end))

        async with anyio.create_task_group() as group:
            for _ in range(2 * MAX_COMMANDS + 1):
                group.start_soon(one_sample)
        return spans

    spans = anyio.run(scenario)
    assert len(spans) == 2 * MAX_COMMANDS + 1
    # At no command's start were more than MAX_COMMANDS running (itself included).
    running = [sum(s <= start < e for s, e in spans) for start, _ in spans]
    assert max(running) == MAX_COMMANDS, spans
