"""The `chief` command line: parse flags, call the library, print results.

Nothing here holds logic a library user would need; each command group lives in its own
module (`engine.py`, `plan.py`, `train.py`, `eval.py`, `registry.py`, `report.py`, `demo.py`)
and is loaded lazily by `main.py`, so `chief --help` starts without importing torch.
`reference.py` writes the CLI reference (docs/CLI.md) from that same click tree.
"""
