"""Ending a process that imported torch and transformers without a second of garbage collection.

As the interpreter shuts down, CPython runs one more full garbage collection over every object
still alive; after torch, transformers and what they import (sympy, scikit-learn, pandas) that
is millions of objects and about a second of CPU once the work is done (measured: `chief plan`
spent 1.1 s of its 4.7 s there, the engine 1.2 s of its stop). Nothing needs collecting in a
process that is ending, so `skip_final_collection` registers `gc.freeze()` as an exit handler:
it moves every object out of that collection's reach. The other exit handlers (log flushing, the
engine's key file, `weakref.finalize` callbacks) still run, and objects freed by reference
counting are still finalized; only objects kept alive by reference cycles are left to the
operating system, as at a crash, so every file chief writes is closed by its own code.

Called first thing by the process entry points (`cli.main.main`, the engine's `__main__`).
"""

from __future__ import annotations

import atexit
import gc

_registered = False


def skip_final_collection() -> None:
    """Freeze every object at exit, out of the final collection's reach (once per process)."""
    global _registered
    if not _registered:
        atexit.register(gc.freeze)
        _registered = True
