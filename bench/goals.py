"""The speed goals, one row per CPU kind and goal, in docs/BENCHMARKS.md's `speed-goals` block.

Each goal is a ratio or a time measured in one run by its own script, which records its row
here (`record`) when asked to write (`--doc`, or `CHIEF_RECORD_RUN=1` for the test suite and
the demo). Recording replaces this CPU kind's row for that goal and keeps every other kind's,
so the table grows as the project meets new machines: the goals hold "on every CPU kind we
meet", and a row measured on one kind says nothing about another.

    python bench/goals.py            # run the three bench goals here and record them
    python bench/goals.py --all      # and the demo and the test suite too (~20 min on 2 cores)
    python bench/goals.py --show     # print the table as recorded

Under an instruction-set cap (e.g. `ONEDNN_MAX_CPU_ISA=AVX512_CORE_VNNI`, which takes bf16
away from oneDNN's kernels) a run measures a lesser machine than its CPU: its rows go to their
own table (`speed-goals-capped`), their CPU kind names the cap, and no other block is written
(`doc_blocks.write_block`). Such rows show how a path behaves; they are not a CPU kind met.

The test-suite and demo rows come from `CHIEF_RECORD_RUN=1 ./scripts/test.sh` and
`CHIEF_RECORD_RUN=1 ./scripts/demo.sh` (bench/record_run.py), which `--all` runs after the
benches: on a CPU kind the table has no rows for yet, that one command writes all five.
"""

from __future__ import annotations

import argparse
import datetime
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from doc_blocks import BENCHMARKS, CAPPED_RUNS_BLOCK, read_block, write_block
from tinker_chief.cpuinfo import cpu_info, describe_isa_caps, isa_caps

BLOCK = "speed-goals"
ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Goal:
    name: str
    target: str
    at_least: float | None = None  # a ratio that must reach this
    at_most_s: float | None = None  # a time that must stay under this

    def met(self, value: float) -> bool:
        if self.at_least is not None:
            return value >= self.at_least
        return self.at_most_s is not None and value < self.at_most_s

    def shown(self, value: float) -> str:
        if self.at_least is not None:
            return f"{value:.2f}x"
        minutes, seconds = divmod(round(value), 60)
        return f"{minutes}m{seconds:02d}s"


GOALS = {
    "train": Goal("training through the SDK vs plain PEFT (its best precision)", ">= 1.0x", 1.0),
    "sample": Goal(
        "16 concurrent samples through the SDK vs sequential HF generate", ">= 10x", 10.0
    ),
    "eval-offline": Goal("`chief eval-offline` vs Inspect's `hf`, like for like", ">= 3x", 3.0),
    "demo": Goal("`chief demo` after set-up", "< 3 min", at_most_s=180.0),
    "tests": Goal("the test suite (pytest's own time)", "< 12 min", at_most_s=720.0),
}
HEADER = [
    "| CPU kind | goal | target | measured | met | date | commit | how |",
    "|---|---|---|---:|---|---|---|---|",
]


def cpu_kind() -> str:
    """The CPU as the goals distinguish machines: vendor model, AVX-512, native bf16, AMX."""
    cpu = cpu_info()
    model = cpu.model.replace("|", "/")
    avx512 = "AVX-512" if "avx512f" in cpu.flags else "no AVX-512"
    bf16 = f"native bf16 ({', '.join(cpu.bf16_flags)})" if cpu.native_bf16 else "no native bf16"
    amx = "AMX" if "amx_tile" in cpu.flags else "no AMX"
    capped = f"; kernels capped by {describe_isa_caps(caps)}" if (caps := isa_caps()) else ""
    return f"{model}; {avx512}; {bf16}; {amx}; {os.cpu_count()} CPUs{capped}"


def goals_block() -> str:
    """The block this run's rows go to: the CPU kinds' table, or the capped runs' own."""
    return CAPPED_RUNS_BLOCK if isa_caps() else BLOCK


def commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    # docs/ aside: the recorders write BENCHMARKS.md during the very run being recorded.
    changed = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)docs")
    return f"{head}+changes" if changed else head


def _rows(doc: Path, block: str) -> list[list[str]]:
    body = read_block(doc, block) or ""
    rows = [
        line.strip().strip("|").split(" | ") for line in body.splitlines() if line.startswith("| ")
    ]
    return [[cell.strip() for cell in row] for row in rows if row[0].strip() != "CPU kind"]


def record(key: str, value: float, how: str, doc: Path = BENCHMARKS) -> str:
    """Write this machine kind's row for goal `key` (replacing its previous one); return the row."""
    goal = GOALS[key]
    kind = cpu_kind()
    row = [
        kind,
        goal.name,
        goal.target,
        goal.shown(value),
        "yes" if goal.met(value) else "**no**",
        str(datetime.date.today()),
        commit(),
        how.replace("|", "/"),
    ]
    block = goals_block()
    rows = [r for r in _rows(doc, block) if not (r[0] == kind and r[1] == goal.name)] + [row]
    order = {goal.name: index for index, goal in enumerate(GOALS.values())}
    rows.sort(key=lambda r: (r[0], order.get(r[1], len(order))))
    text = "\n".join([*HEADER, *("| " + " | ".join(r) + " |" for r in rows)])
    write_block(doc, block, text)
    return "| " + " | ".join(row) + " |"


RUNS = {
    "train": ["bench/engine_train.py", "--steps", "3"],
    "sample": ["bench/engine_sample.py"],
    "eval-offline": ["bench/eval_offline.py", "--n", "100"],
}
# Scripts that record their own goal row (and docs/BENCHMARKS.md block) under CHIEF_RECORD_RUN=1.
RECORDING_SCRIPTS = {"demo": "scripts/demo.sh", "suite": "scripts/test.sh"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--show", action="store_true", help="print the recorded table and stop")
    parser.add_argument(
        "--only", choices=sorted(RUNS), action="append", help="run only these goals"
    )
    parser.add_argument(
        "--all",
        action="store_true",
        help="after the benches also run the demo and the test suite, which record their rows",
    )
    parser.add_argument("--doc", type=Path, default=BENCHMARKS)
    args = parser.parse_args()
    if args.all and (args.show or args.only or args.doc.resolve() != BENCHMARKS.resolve()):
        parser.error("--all runs every goal into docs/BENCHMARKS.md: drop --show, --only, --doc")
    if not args.show:
        for key in args.only or list(RUNS):
            print(f"== {key}: {' '.join(RUNS[key])}", flush=True)
            command = [sys.executable, *RUNS[key], "--doc", str(args.doc)]
            if subprocess.run(command, cwd=ROOT).returncode != 0:
                raise SystemExit(f"error: {RUNS[key][0]} failed; its goal row was not recorded")
    if args.all:
        for key, script in RECORDING_SCRIPTS.items():
            print(f"== {key}: CHIEF_RECORD_RUN=1 {script}", flush=True)
            env = {**os.environ, "CHIEF_RECORD_RUN": "1"}
            if subprocess.run(["bash", script], cwd=ROOT, env=env).returncode != 0:
                raise SystemExit(f"error: {script} failed; its goal row was not recorded")
    for block in (BLOCK, CAPPED_RUNS_BLOCK) if args.show else (goals_block(),):
        print(read_block(args.doc, block) or f"{args.doc}: no `{block}` block yet")


if __name__ == "__main__":
    main()
