"""The CLI through click's runner: list/show/export, compare, promote (gate from chief.toml),
retire."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tinker_chief.registry import MetricValue, Registry, SuiteRequirement

from cli_support import CHIEF_COMMAND
from registry_helpers import outcomes

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def project(project_dir):
    """A project dir with chief.toml (registry at state/reg.db, suite qa + safety) and two
    models."""
    shutil.copy(FIXTURES / "chief.toml", project_dir / "chief.toml")
    from tinker_chief.planning import load_project

    suite = load_project(project_dir).config.eval_suite
    with Registry.open(project_dir / "state" / "reg.db") as reg:
        for passes in ([True] * 40 + [False] * 60, [True] * 70 + [False] * 30):
            m = reg.register_model("bot", base_model="tiny-random-llama", lora={"rank": 8})
            reg.record_eval(
                m.ref,
                suite_name=suite.name,
                suite_version=suite.version,
                task="qa",
                headline_metric="accuracy",
                samples=outcomes(passes),
                metrics=[MetricValue("accuracy", sum(passes) / 100, n=100)],
            )
        reg.register_model("stale", base_model="tiny-random-llama")
    return project_dir, SuiteRequirement.from_suite(suite)


def invoke(*args: str) -> subprocess.CompletedProcess:
    """The real `chief` entry point (error boundary included) in this interpreter."""
    return subprocess.run([*CHIEF_COMMAND, *args], capture_output=True, text=True)


def test_list_show_and_export(project):
    project_dir, suite = project
    listed = json.loads(invoke("registry", "list", "--json").stdout)
    assert [m["ref"] for m in listed["models"]] == ["bot:v1", "bot:v2", "stale:v1"]
    table = invoke("registry", "list").stdout
    assert "bot:v2" in table and "candidate" in table
    shown = json.loads(invoke("registry", "show", "bot", "--json").stdout)
    assert (
        shown["model"]["ref"] == "bot:v2"
        and shown["results"]["qa"]["metrics"]["accuracy"]["value"] == 0.7
    )
    done = invoke("registry", "export")
    assert done.returncode == 0, done.stderr
    text = (project_dir / "MODEL_REGISTRY.md").read_text()
    assert f"Agreed eval suite: `chat` version `{suite.version}`" in text
    assert (
        "- `safety`: missing or stale on the agreed suite — run `chief eval bot:v2 --task safety`"
        in text
    )
    as_json = invoke("registry", "export", "--format", "json", "--output", "-")
    assert [m["ref"] for m in json.loads(as_json.stdout)["models"]] == [
        "bot:v1",
        "bot:v2",
        "stale:v1",
    ]


def test_show_names_chief_selects_choices(project):
    project_dir, _ = project
    with Registry.open(project_dir / "state" / "reg.db") as reg:
        first = reg.mark_selected("bot:v1", "run:r1", reason="only one", actor="chief select")
        reg.mark_selected("bot:v2", "run:r1", reason="qa 0.7 beats 0.4 [p<0.01]")
        second = reg.mark_selected("bot:v2", "sweep:s9", reason="best of the sweep")
    shown = invoke("registry", "show", "bot:v2", "--json")
    assert shown.returncode == 0, shown.stderr
    marks = json.loads(shown.stdout)["selections"]
    assert [(m["scope"], m["model_ref"], m["current"]) for m in marks] == [
        ("run:r1", "bot:v2", True),
        ("sweep:s9", "bot:v2", True),
    ]
    assert marks[0]["reason"] == "qa 0.7 beats 0.4 [p<0.01]"
    text = " ".join(invoke("registry", "show", "bot:v2").stdout.split())  # rich wraps long lines
    assert (
        "selected by chief select for run:r1 on" in text and ": qa 0.7 beats 0.4 [p<0.01]" in text
    )
    assert f"selected by chief select for sweep:s9 on {second.at}: best of the sweep" in text
    old = " ".join(invoke("registry", "show", "bot:v1").stdout.split())
    assert (
        f"selected by chief select for run:r1 on {first.at} (superseded by a later selection): "
        "only one" in old
    )
    assert json.loads(invoke("registry", "show", "stale", "--json").stdout)["selections"] == []
    assert "selected by" not in invoke("registry", "show", "stale").stdout


def test_promote_gate_refusal_force_and_retire(project):
    project_dir, suite = project
    refused = invoke("promote", "bot:v2", "--to", "prod")
    assert refused.returncode == 3
    assert "Error: bot:v2 was not promoted to prod: 1 gate rule(s) failed" in refused.stderr
    assert "task `safety` of suite `chat`" in refused.stderr
    assert "run `chief eval bot:v2 --task safety`" in refused.stderr
    assert "Traceback" not in refused.stderr
    no_reason = invoke("promote", "bot:v2", "--to", "prod", "--force")
    assert no_reason.returncode == 1 and "--force needs --reason" in no_reason.stderr
    forced = invoke(
        "promote",
        "bot:v2",
        "--to",
        "prod",
        "--force",
        "--reason",
        "safety suite not built yet",
        "--actor",
        "erin",
    )
    assert forced.returncode == 0, forced.stderr
    assert (
        "Forced past 1 failing gate rule(s)" in forced.stdout
        and "bot:v2 is now prod" in forced.stdout
    )
    staged = invoke("promote", "bot:v1", "--to", "staging")
    assert staged.returncode == 0 and "bot:v1 is now staging" in staged.stdout
    retired = invoke("retire", "bot:v1", "--reason", "old")
    assert retired.returncode == 0 and "bot:v1 is now retired" in retired.stdout
    with Registry.open(project_dir / "state" / "reg.db") as reg:
        assert reg.prod_model().ref == "bot:v2"
        forced_entry = next(
            e for e in reg.audit_log() if e.command == "promote" and e.target == "bot:v2"
        )
        assert forced_entry.details["forced"] is True and forced_entry.actor == "erin"
        assert [e.command for e in reg.audit_log()[-3:]] == ["promote", "promote", "retire"]
    audit = json.loads(invoke("registry", "audit", "--limit", "3", "--json").stdout)["audit_log"]
    assert [e["command"] for e in audit] == ["promote", "promote", "retire"]
    assert audit[0]["details"]["reason"] == "safety suite not built yet"


def test_compare_table_and_json(project):
    out = invoke("compare", "bot:v1", "bot:v2")
    assert out.returncode == 0, out.stderr
    assert "qa/accuracy" in out.stdout and "(+0.3)" in out.stdout and "p=" in out.stdout
    doc = json.loads(invoke("compare", "bot:v1", "bot:v2", "--json").stdout)
    row = doc["rows"][0]
    assert (
        row["key"] == "qa/accuracy"
        and row["best"] == "bot:v2"
        and row["tests"][1]["method"] == "mcnemar-chi2"
    )
    one = invoke("compare", "bot:v1")
    assert one.returncode == 1 and "at least two models" in one.stderr


def test_errors_are_one_line(project_dir):
    missing = invoke("registry", "list", "--registry", "nowhere.db")
    assert missing.returncode == 1 and missing.stderr.startswith(
        "Error: registry nowhere.db does not exist"
    )
    assert not (project_dir / "nowhere.db").exists()
    Path("junk.db").write_text("not sqlite")
    corrupt = invoke("registry", "list", "--registry", "junk.db")
    assert corrupt.returncode == 1 and "not an SQLite database" in corrupt.stderr
    Registry.open("r.db").close()
    unknown = invoke("registry", "show", "ghost", "--registry", "r.db")
    assert unknown.returncode == 1 and "no model `ghost`" in unknown.stderr
