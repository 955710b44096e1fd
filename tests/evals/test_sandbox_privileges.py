"""The code sandbox gives model code no privileges, even when chief runs as root.

Each test is one attack a sample could make; they run the real bubblewrap sandbox. An attack
that would touch the host if it succeeded only reports success and stops there.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tinker_chief.evals.sandbox import run_python

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap not installed")

_REMOUNT = """
import ctypes, sys
MS_RDONLY, MS_REMOUNT, MS_BIND = 1, 32, 4096
libc = ctypes.CDLL(None, use_errno=True)
def remount_rw(path):
    if libc.mount(None, path.encode(), None, MS_REMOUNT | MS_BIND, None) == 0:
        print('REMOUNTED', path)
        sys.exit(0)  # a host directory is writable now: stop before touching it
    print('refused', path, ctypes.get_errno())
"""


@contextmanager
def watching_the_host(look: Callable[[], list[str]]) -> Iterator[list[str]]:
    """Call `look` every 10 ms from another thread while the body runs; collect what it finds."""
    found: list[str] = []
    finished = threading.Event()

    def watch() -> None:
        while not finished.is_set():
            found.extend(look())
            finished.wait(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        yield found
    finally:
        finished.set()
        watcher.join()


def test_runs_as_nobody_without_capabilities_on_the_host_too():
    marker = f"chief-sandbox-probe-{uuid.uuid4().hex}"

    def host_uids_of_the_probe() -> list[str]:
        uids = []
        for proc in Path("/proc").iterdir():
            try:
                if marker.encode() in (proc / "cmdline").read_bytes():
                    uids += [
                        line.split()[1]
                        for line in (proc / "status").read_text().splitlines()
                        if line.startswith("Uid:")
                    ]
            except OSError:
                continue  # not a process, or it exited
        return uids

    code = (
        "import os, subprocess, sys\n"
        "status = dict(line.split(':', 1) for line in open('/proc/self/status'))\n"
        "print('CapEff', status['CapEff'].strip(), 'uid', os.getuid(), 'gid', os.getgid())\n"
        "try:\n    os.mknod('null', 0o20666, os.makedev(1, 3)); print('MKNOD')\n"
        "except OSError as e:\n    print('mknod refused', e.errno)\n"
        f"subprocess.run([sys.executable, '-c', 'import time; time.sleep(1)  # {marker}'])\n"
    )
    with watching_the_host(host_uids_of_the_probe) as host_uids:
        result = run_python(code)
    assert result.ok, result.stderr
    assert "CapEff 0000000000000000 uid 65534 gid 65534" in result.stdout
    assert "mknod refused" in result.stdout
    unprivileged = str(65534 if os.geteuid() == 0 else os.geteuid())
    assert host_uids and set(host_uids) == {unprivileged}, host_uids


def test_cannot_remount_the_system_writable():
    result = run_python(
        _REMOUNT + "remount_rw('/usr')\n"
        "print([l.split()[4:6] for l in open('/proc/self/mountinfo') if l.split()[4] == '/usr'])\n"
    )
    assert result.ok, result.stderr
    assert "REMOUNTED" not in result.stdout and "refused /usr" in result.stdout
    assert "[['/usr', 'ro," in result.stdout


def test_cannot_write_through_a_read_only_bind_of_a_host_directory():
    # The Python installation is a host directory bound read-only, like /usr in the report.
    root = str(Path(sys.base_prefix).resolve())
    code = _REMOUNT + (
        f"remount_rw({root!r})\n"
        "try:\n"
        f"    open({root + '/chief-sandbox-probe'!r}, 'w'); print('WROTE')\n"
        "except OSError as e:\n    print('write refused', e.errno)\n"
    )
    result = run_python(code)
    assert result.ok, result.stderr
    assert "REMOUNTED" not in result.stdout and "WROTE" not in result.stdout
    assert "write refused" in result.stdout
    assert not Path(root, "chief-sandbox-probe").exists()


@pytest.mark.skipif(
    os.geteuid() != 0, reason="a setuid-root file is only a risk when chief runs as root"
)
def test_a_setuid_file_left_in_scratch_gives_the_host_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(
        tempfile, "tempdir", str(tmp_path)
    )  # where a host-side scratch dir would go

    def setuid_root_files() -> list[str]:
        found = []
        for path in tmp_path.rglob("*"):
            try:
                info = path.lstat()
            except OSError:
                continue
            if info.st_mode & stat.S_ISUID and info.st_uid == 0:
                found.append(str(path))
        return found

    code = (
        "import os, time\n"
        "open('suid', 'wb').write(b'#!/bin/sh\\nid\\n')\n"
        "os.chmod('suid', 0o4755); os.chmod('.', 0o755)\n"
        "print('owner', os.stat('suid').st_uid, oct(os.stat('suid').st_mode))\n"
        "time.sleep(1)\n"
    )
    with watching_the_host(setuid_root_files) as found:
        result = run_python(code)
    assert result.ok, result.stderr
    assert (
        "owner 65534 0o104755" in result.stdout
    )  # the bit is set, on a file nobody owns, in RAM only
    assert found == []
