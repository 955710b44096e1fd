"""The process entry points end without the interpreter's last full garbage collection (about a
second after torch and transformers are imported): every object is frozen out of its reach by
an exit handler, and the exit handlers registered before still run after it."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import atexit, gc
atexit.register(lambda: print("frozen at exit:", gc.get_freeze_count() > 0))
from {entry} import main
try:
    main(["--help"])
except SystemExit:
    pass
print("frozen before exit:", gc.get_freeze_count() > 0)
"""


@pytest.mark.parametrize("entry", ["tinker_chief.cli.main", "tinker_chief.engine.server.__main__"])
def test_an_entry_point_freezes_its_objects_at_exit(entry):
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(entry=entry)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[-2:] == ["frozen before exit: False", "frozen at exit: True"], done.stdout
