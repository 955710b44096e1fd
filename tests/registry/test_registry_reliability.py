"""Real processes against a real SQLite file: SIGKILLed writers, racing promotions, parallel
writers.

No timing assertions: random sleeps only choose where a writer is killed.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tinker_chief.errors import RegistryError
from tinker_chief.registry import Registry

from cli_support import CHIEF_COMMAND
from registry_helpers import SUITE, record_suite

WRITER = Path(__file__).with_name("registry_writer.py")
METRICS, SAMPLES = 20, 200  # as in registry_writer.py


def snapshot(path: Path) -> dict[str, object]:
    """Check the file is whole and consistent; return what it holds for later comparison."""
    with Registry.open(path, create=False):  # recovers the WAL through the normal path
        pass
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
        models = {
            row[0]: row[1:]
            for row in db.execute("SELECT id, name, version, created_at FROM models")
        }
        for model_id, (name, version, _) in models.items():
            history = db.execute(
                "SELECT count(*) FROM status_history WHERE model_id = ?", (model_id,)
            ).fetchone()[0]
            audit = db.execute(
                "SELECT count(*) FROM audit_log WHERE command = 'register' AND target = ?",
                (f"{name}:v{version}",),
            ).fetchone()[0]
            assert (history, audit) == (1, 1), f"half-written model {name}:v{version}"
        runs = {}
        for run_id, status in db.execute("SELECT id, status FROM eval_runs"):
            counts = (
                db.execute("SELECT count(*) FROM metrics WHERE run_id = ?", (run_id,)).fetchone()[
                    0
                ],
                db.execute("SELECT count(*) FROM samples WHERE run_id = ?", (run_id,)).fetchone()[
                    0
                ],
            )
            expected = (METRICS, SAMPLES) if status == "finished" else (0, 0)
            assert counts == expected, f"half-written eval run {run_id} ({status}): {counts}"
            runs[run_id] = status
        return {"models": models, "runs": runs}
    finally:
        db.close()


def test_sigkilled_writer_never_leaves_half_written_rows(tmp_path):
    path = tmp_path / "registry.db"
    rng = random.Random(5)
    before: dict[str, dict] = {"models": {}, "runs": {}}
    for iteration in range(20):
        proc = subprocess.Popen(
            [sys.executable, str(WRITER), str(path), str(iteration % 3)], stdout=subprocess.PIPE
        )
        assert proc.stdout.readline() == b"ready\n"
        time.sleep(rng.uniform(0.0, 0.25))  # where to kill it, not an assertion
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        after = snapshot(path)
        for model_id, row in before["models"].items():
            assert after["models"][model_id] == row  # earlier records intact
        for run_id, status in before["runs"].items():
            # a run may move running -> finished only if its writer finished it; ours never resume
            assert after["runs"][run_id] == status
        before = after
    assert len(before["models"]) > 0


def _race(path: str, ref: str, barrier, results) -> None:
    reg = Registry.open(path)
    report = reg.check_promotion(ref, "prod", suite=SUITE)
    barrier.wait()  # both gates judged against the same prod before either applies
    try:
        reg.apply_promotion(report, actor=ref, reason="race")
        results.put((ref, "won"))
    except RegistryError as exc:
        results.put((ref, str(exc)))


def test_two_processes_promoting_at_once_exactly_one_wins(tmp_path):
    path = tmp_path / "registry.db"
    with Registry.open(path) as reg:
        refs = [reg.register_model(name, base_model="b").ref for name in ("alpha", "beta")]
        for ref in refs:
            record_suite(reg, ref, [True] * 10)
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_race, args=(str(path), ref, barrier, results)) for ref in refs]
    for proc in procs:
        proc.start()
    outcomes = dict(results.get(timeout=60) for _ in procs)
    for proc in procs:
        proc.join()
    winners = [ref for ref, outcome in outcomes.items() if outcome == "won"]
    assert len(winners) == 1
    loser = next(ref for ref in refs if ref not in winners)
    assert "prod changed while the gate was being checked" in outcomes[loser]
    with Registry.open(path) as reg:
        assert [m.ref for m in reg.list_models(status="prod")] == winners
        assert reg.get_model(loser).status == "candidate"
    with (
        sqlite3.connect(path) as db,
        pytest.raises(sqlite3.IntegrityError),
    ):  # the database forbids a second prod
        db.execute("UPDATE models SET status = 'prod' WHERE status != 'prod'")


def _register_many(path: str, count: int) -> None:
    with Registry.open(path) as reg:
        for _ in range(count):
            reg.register_model("shared", base_model="b")


def test_parallel_writers_get_distinct_versions(tmp_path):
    path = str(tmp_path / "registry.db")
    Registry.open(path).close()
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_register_many, args=(path, 15)) for _ in range(3)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join()
        assert proc.exitcode == 0
    with Registry.open(path) as reg:
        assert [m.version for m in reg.list_models()] == list(range(1, 46))


def test_two_cli_promotions_started_together_leave_one_prod(tmp_path):
    """Real `chief promote` processes racing: whichever order SQLite serializes them in,
    there is exactly one prod, and a loser (if the race was real) exits with a one-line error."""
    path = tmp_path / "registry.db"
    with Registry.open(path) as reg:
        refs = [reg.register_model(name, base_model="b").ref for name in ("alpha", "beta")]
    procs = [
        subprocess.Popen(
            [
                *CHIEF_COMMAND,
                "promote",
                ref,
                "--to",
                "prod",
                "--force",
                "--reason",
                "race",
                "--registry",
                str(path),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for ref in refs
    ]
    results = [proc.communicate(timeout=120) + (proc.returncode,) for proc in procs]
    assert any(code == 0 for _, _, code in results)
    for _, err, code in results:
        assert "Traceback" not in err
        if code != 0:
            assert code == 1 and err.startswith("Error: promotion of") and "prod changed" in err
    with Registry.open(path) as reg:
        assert len(reg.list_models(status="prod")) == 1


# A builder of a new registry stopped where the file is built: under its temporary name, with
# SQLite's -wal and -shm beside it, before it is linked into place.
STOPPED_BUILDER = """
import sys
from pathlib import Path
from tinker_chief.registry import _db

migrate = _db.migrate
def migrate_then_wait(db, path):
    migrate(db, path)
    db.execute("CREATE TABLE IF NOT EXISTS pending (x)")  # leaves the WAL with frames in it
    print(path, flush=True)
    sys.stdin.read()
_db.migrate = migrate_then_wait
_db.connect(Path(sys.argv[1]), create=True)
"""


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if ".new" in p.name)


def _dead_pid() -> int:
    command = [sys.executable, "-c", "import os; print(os.getpid())"]
    return int(subprocess.run(command, capture_output=True, check=True).stdout)


def test_an_open_removes_what_a_killed_builder_left_and_keeps_a_live_builders_files(tmp_path):
    """Only the builder's lock keeps its files (its pid runs but the file looks old); once the
    builder is SIGKILLed, the next open removes them, and what an unlocking builder left."""
    path = tmp_path / "registry.db"
    command = [sys.executable, "-c", STOPPED_BUILDER, str(path)]
    builder = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        staging = Path(builder.stdout.readline().decode().strip())
        building = [staging.name, f"{staging.name}-shm", f"{staging.name}-wal"]
        os.utime(staging, (0, 0))  # older than STAGING_GRACE_S: kept for its lock alone
        with Registry.open(path) as reg:
            reg.register_model("bot", base_model="b")
        assert _leftovers(tmp_path) == building
    finally:
        builder.send_signal(signal.SIGKILL)
        builder.wait()
        builder.stdin.close()
        builder.stdout.close()
    dead = _dead_pid()
    old_chief = f".registry.db.{dead}-0123abcd.new"  # a builder from before builders locked
    (tmp_path / old_chief).write_bytes(b"")
    (tmp_path / f"{old_chief}-journal").write_bytes(b"")
    (tmp_path / f".registry.db.{dead}-89abcdef.new-wal").write_bytes(b"")  # its staging file gone
    not_ours = [".registry.db.x.new", f".other.db.{dead}-0123abcd.new", f"registry.db.{dead}-1.new"]
    for name in not_ours:
        (tmp_path / name).write_bytes(b"keep")
    with Registry.open(path) as reg:
        assert [m.ref for m in reg.list_models()] == ["bot:v1"]
    assert _leftovers(tmp_path) == sorted(not_ours)


def test_an_unlocked_staging_file_of_a_running_pid_is_kept_until_it_is_old(tmp_path):
    """A builder that does not lock (an older chief) is alive while its pid runs; a pid reused
    by another process would keep its file only for STAGING_GRACE_S."""
    path = tmp_path / "registry.db"
    staging = tmp_path / f".registry.db.{os.getpid()}-0123abcd.new"
    staging.write_bytes(b"")
    Registry.open(path).close()
    assert staging.exists()
    os.utime(staging, (0, 0))
    Registry.open(path, read_only=True).close()  # a read-only open removes nothing
    assert staging.exists()
    Registry.open(path).close()
    assert not staging.exists()
