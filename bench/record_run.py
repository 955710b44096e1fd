"""Record a run of the test suite or of the demo into docs/BENCHMARKS.md, so the counts and
times the docs quote come from a run, never from typing.

`CHIEF_RECORD_RUN=1 ./scripts/test.sh` and `CHIEF_RECORD_RUN=1 ./scripts/demo.sh` call it
after their run; each writes its own block (`tests`, `demo`) through `doc_blocks.write_block`.

    python bench/record_run.py [--doc FILE] tests --junit FILE --seconds N [--args "PYTEST ARGS"]
    python bench/record_run.py [--doc FILE] demo --seconds N --script-seconds N --exit-code C
"""

from __future__ import annotations

import argparse
import datetime
import xml.etree.ElementTree as ET
from pathlib import Path

from doc_blocks import write_block
from engine_common import machine
from goals import record

DOC = Path(__file__).resolve().parents[1] / "docs" / "BENCHMARKS.md"


def duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest:02d}s" if minutes else f"{rest}s"


def junit_counts(path: Path) -> tuple[dict[str, int], float]:
    """Passed/failed/errors/skipped and pytest's own seconds, summed over the file's test suites."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        raise SystemExit(f"error: {path}: cannot read pytest's --junitxml output ({exc})") from None
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    if not suites:
        raise SystemExit(
            f"error: {path}: no <testsuite> element; expected pytest's --junitxml output"
        )
    total = {
        key: sum(int(suite.get(key, 0)) for suite in suites)
        for key in ("tests", "failures", "errors", "skipped")
    }
    seconds = sum(float(suite.get("time", 0)) for suite in suites)
    counts = {
        "passed": total["tests"] - total["failures"] - total["errors"] - total["skipped"],
        "failed": total["failures"],
        "errors": total["errors"],
        "skipped": total["skipped"],
    }
    return counts, seconds


def workers_text(workers: int) -> str:
    return f"on {workers} pytest-xdist workers" if workers else "in one process"


def tests_block(junit: Path, script_seconds: float, pytest_args: str, workers: int) -> str:
    counts, seconds = junit_counts(junit)
    summary = ", ".join(f"{value} {key}" for key, value in counts.items())
    ran = f"`pytest {pytest_args}`" if pytest_args.strip() else "the whole suite"
    return (
        f"Recorded by `CHIEF_RECORD_RUN=1 ./scripts/test.sh` on {datetime.date.today()} "
        f"({ran}).\n\n"
        f"- machine: {machine()}\n"
        f"- tests: {summary}, in {duration(seconds)} {workers_text(workers)}\n"
        f"- the whole script (set-up, lint and types, tests): {duration(script_seconds)}"
    )


def demo_block(demo_seconds: float, script_seconds: float, exit_code: int) -> str:
    outcome = "finished" if exit_code == 0 else f"FAILED (exit code {exit_code})"
    return (
        f"Recorded by `CHIEF_RECORD_RUN=1 ./scripts/demo.sh` on {datetime.date.today()}.\n\n"
        f"- machine: {machine()}\n"
        f"- `chief demo`: {outcome} in {duration(demo_seconds)}\n"
        f"- the whole script (set-up and the demo): {duration(script_seconds)}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--doc", type=Path, default=DOC, help="the Markdown file to write (default: %(default)s)"
    )
    runs = parser.add_subparsers(dest="run", required=True)
    tests = runs.add_parser("tests", help="a pytest run, from its --junitxml file")
    tests.add_argument("--junit", type=Path, required=True)
    tests.add_argument(
        "--seconds", type=float, required=True, help="wall seconds of the whole script"
    )
    tests.add_argument("--args", default="", help="the arguments pytest was given")
    tests.add_argument(
        "--workers", type=int, default=0, help="pytest-xdist workers (default 0: one process)"
    )
    demo = runs.add_parser("demo", help="a `chief demo` run")
    demo.add_argument("--seconds", type=float, required=True, help="wall seconds of `chief demo`")
    demo.add_argument(
        "--script-seconds", type=float, required=True, help="wall seconds of the whole script"
    )
    demo.add_argument("--exit-code", type=int, required=True)
    args = parser.parse_args(argv)
    if args.run == "tests":
        body = tests_block(args.junit, args.seconds, args.args, args.workers)
    else:
        body = demo_block(args.seconds, args.script_seconds, args.exit_code)
    try:
        write_block(args.doc, args.run, body)
        if args.run == "tests":
            _, seconds = junit_counts(args.junit)
            command = " ".join(["./scripts/test.sh", *args.args.split()])
            how = f"`{command}`, {workers_text(args.workers)}"
            print(record("tests", seconds, how, args.doc))
        elif args.exit_code == 0:  # a failed demo has no time to compare with the goal
            print(record("demo", args.seconds, "`./scripts/demo.sh`", args.doc))
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None
    print(f"recorded the {args.run} run in {args.doc}")


if __name__ == "__main__":
    main()
