"""Registry edge cases through the real `chief` entry point.

Stored text with rich markup or HTML, empty/foreign/damaged/read-only registry files, and a
task whose headline metric no sample could score: each is a real SQLite file and a real
`chief` subprocess; a read-only directory or file is a real read-only bind mount (bubblewrap),
so the test means the same as root (who ignores file modes) and as any other user.
"""

from __future__ import annotations

import json
import multiprocessing
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tinker_chief.errors import RegistryError
from tinker_chief.registry import NOT_SCORED, MetricValue, Registry

from cli_support import assert_one_line_error
from cli_support import run_chief as chief
from registry_helpers import SUITE, outcomes, record_suite

FIXTURES = Path(__file__).parent / "fixtures"
MARKUP = "[/] [bold]x[/bold] [red"
HTML = "<script>alert(1)</script> & <img src=x onerror=alert(2)>"


# ------------------------------------------------------------------- item 9: stored markup


def test_markup_in_reason_and_actor_is_printed_literally(project_dir):
    with Registry.open("r.db") as reg:
        for name in ("bot", "other"):
            reg.register_model(
                name, base_model="tiny-random-llama", display_name=f"{name} {MARKUP}"
            )
            reg.record_eval(
                f"{name}:v1",
                suite_name="chat",
                suite_version="v1",
                task="qa",
                headline_metric="accuracy",
                samples=outcomes([True, False] * 5),
                metrics=[
                    MetricValue("accuracy", 0.5, 0.2, 0.8, 10),
                    MetricValue(f"m{MARKUP}", 1.0),
                ],
            )
    promoted = chief(
        "promote",
        "bot:v1",
        "--to",
        "staging",
        "--registry",
        "r.db",
        "--reason",
        MARKUP,
        "--actor",
        f"erin {MARKUP}",
    )
    assert promoted.returncode == 0, promoted.stderr
    printed = {}
    for command in (
        ["registry", "show", "bot"],
        ["registry", "audit"],
        ["registry", "list"],
        ["compare", "bot:v1", "other:v1"],
    ):
        result = chief(*command, "--registry", "r.db")
        assert result.returncode == 0 and "Traceback" not in result.stderr, (command, result.stderr)
        printed[command[1] if command[0] == "registry" else command[0]] = result.stdout
    assert f"by erin {MARKUP}: {MARKUP}" in printed["show"] and f"(bot {MARKUP})" in printed["show"]
    assert f"m{MARKUP}" in printed["show"] and f"qa/m{MARKUP}" in printed["compare"]
    assert f"erin {MARKUP}" in printed["audit"] and f'"reason": "{MARKUP}"' in printed["audit"]


# ------------------------------------------------------------ item 13: HTML in the export


def test_markdown_export_escapes_html_from_reason_and_actor(project_dir):
    with Registry.open("r.db") as reg:
        reg.register_model("bot", base_model="tiny-random-llama", display_name=HTML)
    forced = chief(
        "promote",
        "bot",
        "--to",
        "prod",
        "--force",
        "--reason",
        HTML,
        "--actor",
        HTML,
        "--registry",
        "r.db",
    )
    assert forced.returncode == 0, forced.stderr
    text = chief("registry", "export", "--registry", "r.db", "--output", "-").stdout
    assert "<script>" not in text and "<img" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;img src=x onerror=alert(2)&gt;" in text
    assert (
        text.count("&lt;script&gt;") >= 4
    )  # display name, history actor and reason, forced promotion
    as_json = json.loads(
        chief(
            "registry", "export", "--format", "json", "--registry", "r.db", "--output", "-"
        ).stdout
    )
    assert as_json["models"][0]["status_history"][-1]["reason"] == HTML  # data stays data in JSON


# ------------------------------------------------------------- item 10: registry files


def test_empty_registry_file_is_refused_not_reinitialised(project_dir):
    Path("registry.db").write_bytes(b"")
    listed = chief("registry", "list", "--registry", "registry.db")
    assert_one_line_error(listed, "registry.db is empty (0 bytes)", "Restore it from a backup")
    with pytest.raises(RegistryError, match="is empty"):
        Registry.open("registry.db")  # create=True (what chief train / chief eval use) refuses too
    assert Path("registry.db").read_bytes() == b""
    assert sorted(p.name for p in project_dir.iterdir()) == ["registry.db"]


def _create_and_register(path: str, barrier) -> None:
    barrier.wait()
    with Registry.open(path) as reg:
        reg.register_model("shared", base_model="b")


def test_processes_creating_one_registry_at_once_all_use_it(tmp_path):
    """A new registry appears whole (never as the empty file the check above refuses)."""
    path = str(tmp_path / "new" / "registry.db")
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(4)
    procs = [ctx.Process(target=_create_and_register, args=(path, barrier)) for _ in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join()
        assert proc.exitcode == 0
    with Registry.open(path, create=False) as reg:
        assert [m.version for m in reg.list_models()] == [1, 2, 3, 4]
    assert [p.name for p in (tmp_path / "new").iterdir() if p.name.endswith(".new")] == []


def test_foreign_sqlite_file_is_refused_before_any_write(project_dir):
    with sqlite3.connect("notes.db") as db:
        db.execute("CREATE TABLE notes (x)")
        db.execute("INSERT INTO notes VALUES ('keep me')")
    db.close()
    before = Path("notes.db").read_bytes()
    for command in (["registry", "list"], ["promote", "x", "--to", "staging"]):
        assert_one_line_error(
            chief(*command, "--registry", "notes.db"), "not a chief registry", "left untouched"
        )
    assert Path("notes.db").read_bytes() == before
    with sqlite3.connect("notes.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # not switched to WAL
    assert not Path("notes.db-wal").exists()


def _wreck_a_models_page(path: Path) -> None:
    """Overwrite the cell area of one leaf page of the `models` table (keeping the header)."""
    with sqlite3.connect(path) as db:
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
    db.close()
    data = bytearray(path.read_bytes())
    for start in range(page_size, len(data), page_size):  # page 1 holds the schema: leave it
        page = data[start : start + page_size]
        if page[0] == 0x0D and b"damage-me" in page:  # a table leaf holding model rows
            data[start + 8 : start + page_size // 2] = b"\x07" * (page_size // 2 - 8)
            path.write_bytes(bytes(data))
            return
    raise AssertionError("no models leaf page found")


def test_damaged_page_is_refused_with_how_to_recover(project_dir):
    path = project_dir / "registry.db"
    with Registry.open(path) as reg:
        for _ in range(40):
            reg.register_model(
                "bot", base_model="tiny-random-llama", display_name="damage-me " * 30
            )
    _wreck_a_models_page(path)
    with sqlite3.connect(path) as raw:  # SQLite itself agrees the file is damaged
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] != "ok"
    raw.close()
    before = path.read_bytes()
    for command in (
        ["registry", "list"],
        ["registry", "show", "bot"],
        ["promote", "bot", "--to", "staging"],
    ):
        assert_one_line_error(
            chief(*command, "--registry", str(path)),
            "registry.db is damaged",
            "quick_check",
            ".recover",
            "left untouched",
        )
    assert path.read_bytes() == before


def _bwrap_works() -> bool:
    if shutil.which("bwrap") is None:
        return False
    return (
        subprocess.run(["bwrap", "--dev-bind", "/", "/", "true"], capture_output=True).returncode
        == 0
    )


needs_bwrap = pytest.mark.skipif(
    not _bwrap_works(), reason="bubblewrap cannot make a read-only mount here"
)


@needs_bwrap
@pytest.mark.parametrize("read_only", ["directory", "file"])
def test_read_only_registry_can_be_listed_shown_exported_and_compared(tmp_path, read_only):
    home = tmp_path / "shared"
    home.mkdir()
    path = home / "registry.db"
    shutil.copy(FIXTURES / "chief.toml", tmp_path / "chief.toml")
    with Registry.open(path) as reg:
        for name in ("bot", "other"):
            reg.register_model(name, base_model="tiny-random-llama")
            record_suite(reg, f"{name}:v1", [True, False] * 10)
    target = home if read_only == "directory" else path
    wrap = ["bwrap", "--dev-bind", "/", "/", "--ro-bind", str(target), str(target)]
    registry = ["--registry", str(path), "--project", str(tmp_path)]
    for command in (
        ["registry", "list"],
        ["registry", "show", "bot"],
        ["registry", "audit"],
        ["registry", "export", "--output", "-"],
        ["compare", "bot:v1", "other:v1"],
    ):
        result = chief(*command, *registry, wrap=wrap)
        assert result.returncode == 0, (command, result.stderr)
        assert "bot:v1" in result.stdout
    refused = chief("promote", "bot", "--to", "staging", *registry, wrap=wrap)
    assert_one_line_error(refused, str(path))
    with Registry.open(path, create=False) as reg:
        assert reg.get_model("bot").status == "candidate"


# ------------------------------------------------------- item 13: a task nobody could score


def test_not_scored_headline_blocks_the_gate_with_why_and_shows_everywhere(project_dir):
    shutil.copy(FIXTURES / "chief.toml", project_dir / "chief.toml")
    why = "0 samples scored: 5 unscored by the grader, 0 failed to sample"
    from tinker_chief.planning import load_project

    version = load_project(
        project_dir
    ).config.eval_suite.version  # what `chief eval` records against
    with Registry.open(project_dir / "state" / "reg.db") as reg:
        reg.register_model("bot", base_model="tiny-random-llama")
        record_suite(reg, "bot:v1", [True] * 10, version=version)
        reg.record_eval(
            "bot:v1",
            suite_name="chat",
            suite_version=version,
            task="qa",
            headline_metric="accuracy",
            metrics=[MetricValue("unscored", 5)],
            settings={NOT_SCORED: {"accuracy": why}},
        )
    refused = chief("promote", "bot", "--to", "prod")
    assert refused.returncode == 3, refused.stderr
    assert (
        f"not scored: task `qa` of suite `chat` ran on bot:v1 but its headline metric `accuracy` "
        f"has no value ({why})" in refused.stderr
    )
    assert "stale or missing eval: task `qa`" not in refused.stderr
    shown = chief("registry", "show", "bot")
    assert shown.returncode == 0 and "qa/accuracy not scored" in shown.stdout
    exported = chief("registry", "export", "--output", "-").stdout
    assert f"- `qa/accuracy`: not scored — {why}" in exported
    assert (
        "missing or stale on the agreed suite — run `chief eval bot:v1 --task qa`" not in exported
    )
    forced = chief("promote", "bot", "--to", "prod", "--force", "--reason", "judge fixed tomorrow")
    assert forced.returncode == 0 and "not scored: task `qa`" in forced.stdout


def test_prod_not_scored_is_a_note_not_a_regression(reg):
    base = reg.register_model("base", base_model="b")
    record_suite(reg, base.ref, [True] * 10)
    reg.record_eval(
        base.ref,
        suite_name="chat",
        suite_version="v1",
        task="qa",
        headline_metric="accuracy",
        metrics=[MetricValue("unscored", 10)],
        settings={NOT_SCORED: {"accuracy": "judge unreadable"}},
    )
    reg.promote(base.ref, "prod", suite=SUITE, force=True, reason="bootstrap")
    tuned = reg.register_model("tuned", base_model="b")
    record_suite(reg, tuned.ref, [True] * 8 + [False] * 2)
    report = reg.check_promotion(tuned.ref, "prod", suite=SUITE)
    assert report.passed, report.reasons
    assert any("prod base:v1 was not scored on it" in note for note in report.notes)
