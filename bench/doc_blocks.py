"""Generated blocks inside a Markdown file: `<!-- NAME:begin -->` ... `<!-- NAME:end -->`.

A script that measures something writes its result into its own block of docs/BENCHMARKS.md
with `write_block`, replacing the previous result; the text around the block stays as written.
A file without the block gets it appended at the end.

A run under an instruction-set cap (`ONEDNN_MAX_CPU_ISA` and the like, `cpuinfo.isa_caps`)
measures a lesser machine than the CPU it ran on, so it writes only the one block meant for
such runs (`CAPPED_RUNS_BLOCK`, the goal rows `bench/goals.py` keeps for them) and leaves every
other block to the CPU's own runs.
"""

from __future__ import annotations

import re
from pathlib import Path

from tinker_chief.cpuinfo import describe_isa_caps, isa_caps

BENCHMARKS = Path(__file__).resolve().parents[1] / "docs" / "BENCHMARKS.md"
CAPPED_RUNS_BLOCK = "speed-goals-capped"


def _markers(name: str) -> tuple[str, str]:
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", name):
        raise ValueError(f"block name {name!r}: expected lowercase letters, digits and dashes")
    return f"<!-- {name}:begin -->", f"<!-- {name}:end -->"


def read_block(path: Path, name: str) -> str | None:
    """The text between the NAME markers of `path`, or None where the file or block is missing."""
    begin, end = _markers(name)
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    start, stop = text.find(begin), text.find(end)
    return text[start + len(begin) : stop].strip() if 0 <= start < stop else None


def write_block(path: Path, name: str, body: str) -> None:
    """Put `body` between the NAME markers of `path`, in place of what was there (under an
    instruction-set cap, only into `CAPPED_RUNS_BLOCK`: other blocks are left as they are)."""
    begin, end = _markers(name)
    if (caps := isa_caps()) and name != CAPPED_RUNS_BLOCK:
        print(f"not written into {path.name}'s `{name}` block: it holds runs on the CPU's own")
        print(f"kernels, and this one ran under {describe_isa_caps(caps)}")
        return
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    block = f"{begin}\n{body.strip()}\n{end}"
    start, stop = text.find(begin), text.find(end)
    if start < 0 and stop < 0:
        text = f"{text.rstrip()}\n\n{block}\n" if text.strip() else f"{block}\n"
    elif 0 <= start < stop:
        text = text[:start] + block + text[stop + len(end) :]
    else:
        raise ValueError(
            f"{path}: the {begin} / {end} markers are missing one half or out of order"
        )
    path.write_text(text, encoding="utf-8")


def publish(lines: list[str], name: str, write: bool) -> None:
    """Print a benchmark's result and, with `write` (its `--write`), put it into BENCHMARKS.md."""
    text = "\n".join(lines)
    print(text)
    if write:
        write_block(BENCHMARKS, name, text)
