"""bench/record_run.py writes a real pytest run's counts and times into its block of a Markdown
file (what `CHIEF_RECORD_RUN=1 ./scripts/test.sh` and `./scripts/demo.sh` do to
docs/BENCHMARKS.md), replacing the previous record and leaving the text around it alone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tinker_chief.cpuinfo import ISA_CAP_VARIABLES

ROOT = Path(__file__).resolve().parents[1]
RECORD = ROOT / "bench" / "record_run.py"

SUITE = """
import pytest

def test_passes():
    pass

def test_also_passes():
    pass

def test_fails():
    assert False

@pytest.mark.skip(reason="on purpose")
def test_skipped():
    pass
"""


def _junit_of_a_real_run(tmp_path: Path) -> Path:
    (tmp_path / "suite").mkdir()
    (tmp_path / "suite" / "test_tiny.py").write_text(SUITE)
    junit = tmp_path / "junit.xml"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--junitxml={junit}",
            ".",
        ],
        cwd=tmp_path / "suite",
        capture_output=True,
        text=True,
        timeout=120,
    )
    return junit


def _record(
    doc: Path, *args: str, caps: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    # The CPU's own kernels unless `caps` sets instruction-set caps (the rows depend on them).
    env = {key: value for key, value in os.environ.items() if key not in ISA_CAP_VARIABLES}
    return subprocess.run(
        [sys.executable, str(RECORD), "--doc", str(doc), *args],
        env={**env, **(caps or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_test_run_is_recorded_in_its_block_and_replaces_the_last(tmp_path: Path) -> None:
    junit = _junit_of_a_real_run(tmp_path)
    doc = tmp_path / "BENCHMARKS.md"
    doc.write_text(
        "# Benchmarks\n\nbefore\n\n<!-- tests:begin -->\nold figures\n<!-- tests:end -->\n\nafter\n"
    )
    result = _record(
        doc,
        "tests",
        "--junit",
        str(junit),
        "--seconds",
        "125",
        "--args",
        "-k tiny",
        "--workers",
        "2",
    )
    assert result.returncode == 0, result.stderr
    text = doc.read_text()
    assert text.startswith("# Benchmarks\n\nbefore\n\n<!-- tests:begin -->\n")
    assert "\n<!-- tests:end -->\n\nafter\n" in text
    assert "old figures" not in text
    assert "- tests: 2 passed, 1 failed, 0 errors, 1 skipped, in " in text
    assert " on 2 pytest-xdist workers\n" in text
    assert "- the whole script (set-up, lint and types, tests): 2m05s" in text
    assert "(`pytest -k tiny`)" in text and "- machine: " in text

    assert _record(doc, "tests", "--junit", str(junit), "--seconds", "7").returncode == 0
    again = doc.read_text()
    assert (
        again.count("<!-- tests:begin -->") == 1 and "the whole suite" in again and ": 7s" in again
    )
    assert " in one process\n" in again


def test_a_demo_run_gets_its_own_block_appended(tmp_path: Path) -> None:
    doc = tmp_path / "BENCHMARKS.md"
    doc.write_text("# Benchmarks\n")
    result = _record(doc, "demo", "--seconds", "130", "--script-seconds", "200", "--exit-code", "0")
    assert result.returncode == 0, result.stderr
    text = doc.read_text()
    assert text.startswith("# Benchmarks\n\n<!-- demo:begin -->\n")
    assert "- `chief demo`: finished in 2m10s" in text and "(set-up and the demo): 3m20s" in text


def test_a_broken_block_or_input_is_one_error_line(tmp_path: Path) -> None:
    doc = tmp_path / "BENCHMARKS.md"
    doc.write_text("<!-- demo:end -->\n<!-- demo:begin -->\n")
    result = _record(doc, "demo", "--seconds", "1", "--script-seconds", "1", "--exit-code", "0")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "markers are missing one half or out of order" in result.stderr
    result = _record(doc, "tests", "--junit", str(tmp_path / "missing.xml"), "--seconds", "1")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "cannot read pytest's --junitxml output" in result.stderr


def test_each_run_records_its_speed_goal_row_per_cpu_kind(tmp_path: Path) -> None:
    """The goal table keeps one row per (CPU kind, goal): a new run replaces this kind's row and
    keeps the rows other machine kinds recorded."""
    other = (
        "| Some Other CPU; no AVX-512; no native bf16; no AMX; 2 CPUs | `chief demo` after set-up"
    )
    doc = tmp_path / "BENCHMARKS.md"
    doc.write_text(
        "# Benchmarks\n\n<!-- speed-goals:begin -->\n"
        f"{other} | < 3 min | 5m00s | **no** | 2026-01-01 | abc1234 | `./scripts/demo.sh` |\n"
        "<!-- speed-goals:end -->\n"
    )
    result = _record(doc, "demo", "--seconds", "150", "--script-seconds", "300", "--exit-code", "0")
    assert result.returncode == 0, result.stderr
    failed = _record(doc, "demo", "--seconds", "10", "--script-seconds", "20", "--exit-code", "1")
    assert failed.returncode == 0, failed.stderr
    junit = _junit_of_a_real_run(tmp_path)
    assert _record(doc, "tests", "--junit", str(junit), "--seconds", "9").returncode == 0

    block = (
        doc.read_text().split("<!-- speed-goals:begin -->")[1].split("<!-- speed-goals:end -->")[0]
    )
    rows = [line for line in block.splitlines() if line.startswith("| ") and "CPU kind" not in line]
    assert sum(row.startswith(other) for row in rows) == 1, "another machine kind's row is kept"
    ours = [row for row in rows if "`chief demo` after set-up" in row and not row.startswith(other)]
    assert len(ours) == 1 and "| 2m30s | yes |" in ours[0], (
        "the latest successful demo replaced ours"
    )
    suite = [row for row in rows if "the test suite" in row]
    assert len(suite) == 1 and "| < 12 min |" in suite[0] and "| yes |" in suite[0]


def test_a_run_under_an_instruction_set_cap_records_only_its_own_goal_row(tmp_path: Path) -> None:
    """Under ONEDNN_MAX_CPU_ISA the machine measured is not the CPU's own: the run's goal row goes
    to the capped runs' table, naming the cap, and the CPU kinds' table and the demo block stay
    as the CPU's own runs wrote them."""
    doc = tmp_path / "BENCHMARKS.md"
    args = ("demo", "--seconds", "100", "--script-seconds", "120", "--exit-code", "0")
    assert _record(doc, *args).returncode == 0
    before = doc.read_text()

    capped = _record(
        doc,
        "demo",
        "--seconds",
        "200",
        "--script-seconds",
        "220",
        "--exit-code",
        "0",
        caps={"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_VNNI"},
    )
    assert capped.returncode == 0, capped.stderr
    assert "not written into BENCHMARKS.md's `demo` block" in capped.stdout
    text = doc.read_text()
    assert text.startswith(before.rstrip())  # what was there is unchanged; one block appended
    rows = text.split("<!-- speed-goals-capped:begin -->")[1].split("<!-- speed-goals-capped")[0]
    (row,) = [
        line for line in rows.splitlines() if line.startswith("| ") and "CPU kind" not in line
    ]
    assert "kernels capped by ONEDNN_MAX_CPU_ISA=AVX512_CORE_VNNI |" in row
    assert "| 3m20s | **no** |" in row


def test_goals_all_refuses_a_partial_or_elsewhere_run_before_running_anything(
    tmp_path: Path,
) -> None:
    """`bench/goals.py --all` records every goal (the demo and the suite write to
    docs/BENCHMARKS.md only), so `--show`, `--only` or another `--doc` beside it is a usage
    error."""
    for extra in (["--only", "train"], ["--doc", str(tmp_path / "B.md")], ["--show"]):
        result = subprocess.run(
            [sys.executable, str(ROOT / "bench" / "goals.py"), "--all", *extra],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 2 and "drop --show, --only, --doc" in result.stderr
        assert "==" not in result.stdout  # no bench started


def test_the_training_bench_times_peft_under_bf16_only_where_bf16_is_native() -> None:
    """bench/engine_train.py's PEFT baseline in its best precision: on a CPU without native bf16
    (faked here: the flags this process reads) only fp32, as the engine's probe never times
    emulated bf16 (20x slower when the kernels were capped to AVX2); with it, both."""
    script = """
import sys
sys.path.insert(0, "bench")
import engine_train
from tinker_chief.cpuinfo import CpuInfo
from tinker_chief.engine.compute import devices
print(sorted(engine_train.peft_precisions("cpu")))
devices.cpu_info = lambda: CpuInfo("AVX2-only CPU", frozenset({"avx2", "fma"}))
print(sorted(engine_train.peft_precisions("cpu")))
devices.cpu_info = lambda: CpuInfo("bf16 CPU", frozenset({"avx512f", "avx512_bf16"}))
print(sorted(engine_train.peft_precisions("cpu")))
"""
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    here, avx2, native = result.stdout.splitlines()
    assert avx2 == "['float32']" and native == "['bfloat16', 'float32']"
    assert here in (avx2, native)
