"""`chief report` end to end: a real project dir, a real SQLite registry, real run logs, and the
HTML rendered by headless Chromium (Debian's `chromium`), checked by screenshot and DOM dump."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from tinker_chief.cli.main import cli
from tinker_chief.registry import MetricValue, Registry, SampleOutcome

CHIEF_TOML = """
name = "demo"
base_model = "tiny-random-llama"
renderer = "chatml"
recipe = "sl"
[data]
train = "data/train.jsonl"
val = "data/heldout.jsonl"
[lora]
rank = 8
[optimizer]
learning_rate = 0.0005
[schedule]
batch_size = 8
epochs = 3
[eval_suite]
name = "demo-suite"
[[eval_suite.tasks]]
name = "secret_code"
layer = "product"
kind = "jsonl"
data = "data/heldout.jsonl"
"""


def _project(tmp_path: Path) -> Path:
    (tmp_path / "chief.toml").write_text(CHIEF_TOML)
    run = tmp_path / ".chief" / "runs" / "run-1"
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"status": "finished"}))
    rows = [{"step": s, "train/loss": 3.0 / s} for s in range(1, 21)]
    rows += [{"step": s, "val/nll": 2.5 - s / 10, "val/accuracy": s / 20} for s in (0, 10, 20)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    log = tmp_path / "calibration.json"
    bins = [
        {
            "low": b / 5,
            "high": (b + 1) / 5,
            "count": 4,
            "confidence": b / 5 + 0.1,
            "accuracy": b / 6,
        }
        for b in range(5)
    ]
    log.write_text(json.dumps({"metrics": {"reliability": bins}}))
    with Registry.open(tmp_path / ".chief" / "registry.db") as registry:
        for name, acc in (("base", 0.1), ("tuned", 0.8)):
            model = registry.register_model(
                "demo",
                base_model="tiny-random-llama",
                recipe="sl",
                display_name=name,
                training_run_id="run-1",
                training_step=20,
            )
            registry.record_eval(
                model.ref,
                suite_name="demo-suite",
                suite_version="v1",
                task="secret_code",
                metrics=[MetricValue("accuracy", acc, acc - 0.1, acc + 0.1, 50)],
                samples=[SampleOutcome("1", acc, acc > 0.5)],
                headline_metric="accuracy",
            )
            registry.record_eval(
                model.ref,
                suite_name="demo-suite",
                suite_version="v1",
                task="safety",
                metrics=[MetricValue("refusal_rate", 0.9 - acc / 2, 0.5, 0.95, 20)],
                headline_metric="refusal_rate",
            )
            # v1's reliability bins come from its log file, v2's from the run settings `chief eval`
            # records
            registry.record_eval(
                model.ref,
                suite_name="demo-suite",
                suite_version="v1",
                task="calibration",
                metrics=[MetricValue("ece", 0.2), MetricValue("brier", 0.5)],
                headline_metric="ece",
                log_location=str(log) if name == "base" else None,
                settings={"reliability": bins} if name == "tuned" else {},
            )
    return tmp_path


def test_report_has_every_section_with_images_and_tables(tmp_path: Path) -> None:
    project = _project(tmp_path)
    out = tmp_path / "out" / "report.html"
    result = CliRunner().invoke(cli, ["report", "--project", str(project), "--output", str(out)])
    assert result.exit_code == 0, result.output
    page = out.read_text()
    images = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,([^"]+)"', page)
    assert {alt for alt, _ in images} == {
        "learning curves",
        "eval comparison",
        "reliability diagram",
        "safety comparison",
    }
    for _, data in images:
        assert base64.b64decode(data).startswith(b"\x89PNG")
    for table in ("plan", "evals", "metrics", "registry", "history"):
        assert f'<table class="{table}">' in page
    assert "demo:v2" in page and "refusal_rate" in page
    assert 'class="none"' not in page  # every section had data, none says "not recorded"
    from tinker_chief.reports.collect import collect, reliability_table

    tables = [reliability_table(r) for r in collect(project).results if r.task == "calibration"]
    assert len(tables) == 2 and all(t == tables[0] for t in tables) and len(tables[0]) == 5


def test_report_shows_the_task_version_and_dataset_revision_of_published_benchmarks(
    tmp_path: Path,
) -> None:
    project = _project(tmp_path)
    revision = "7dce6050a7d6d172f3cc5c32aa97f52fa1a2e544"
    # the settings `chief eval` records for an `inspect_evals/...` suite task (evals/tasks.py)
    dataset = [
        {
            "path": "openai/openai_humaneval",
            "name": None,
            "data_dir": None,
            "split": "test",
            "revision": revision,
            "origin": "staged",
            "rows": 164,
            "staged_from": "/data/HumanEval.jsonl.gz",
        }
    ]
    with Registry.open(project / ".chief" / "registry.db") as registry:
        registry.record_eval(
            "demo:v2",
            suite_name="demo-suite",
            suite_version="v1",
            task="humaneval",
            metrics=[MetricValue("accuracy", 0.2, n=5)],
            headline_metric="accuracy",
            settings={
                "inspect_task": "inspect_evals/humaneval",
                "task_version": "3",
                "dataset": dataset,
                "sandbox": "chief",
            },
        )
    result = CliRunner().invoke(cli, ["report", "--project", str(project)])
    assert result.exit_code == 0, result.output
    page = (project / "report.html").read_text()
    table = page.split('<table class="benchmarks">', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr>(.*?)</tr>", table.split("<tbody>", 1)[1])
    assert [re.findall(r"<td>(.*?)</td>", row) for row in rows] == [
        [
            "demo:v2",
            "humaneval",
            "inspect_evals/humaneval",
            "3",
            f"openai/openai_humaneval [default] test @ {revision} (staged, 164 rows)",
        ]
    ]


def test_report_draws_names_with_dollar_signs_as_typed(tmp_path: Path) -> None:
    """Matplotlib reads `$...$` as mathtext: `$\\frac$` made `chief report` fail; a run, task or
    metric name is shown as typed, in the charts and in the tables."""
    project = _project(tmp_path)
    run = project / ".chief" / "runs" / "run-$\\frac$"
    run.mkdir()
    row = {"step": 1, "train/loss": 1.0, "val/nll": 2.0}
    (run / "metrics.jsonl").write_text(json.dumps(row) + "\n")
    task, metric = "qa-$\\frac$", "acc-$x_{$"
    with Registry.open(project / ".chief" / "registry.db") as registry:
        for ref in ("demo:v1", "demo:v2"):
            registry.record_eval(
                ref,
                suite_name="demo-suite",
                suite_version="v1",
                task=task,
                metrics=[MetricValue(metric, 0.5, 0.4, 0.6, 10)],
                headline_metric=metric,
            )
    result = CliRunner().invoke(cli, ["report", "--project", str(project)])
    assert result.exit_code == 0, result.output
    page = (project / "report.html").read_text()
    assert f"<td>demo:v2</td><td>{task}</td><td>{metric}</td>" in page
    assert '<img alt="learning curves"' in page and '<img alt="eval comparison"' in page


def test_report_draws_the_reliability_bins_it_can_read_and_skips_the_rest(tmp_path: Path) -> None:
    """Recorded reliability bins are read defensively: a bin without confidence or accuracy, or an
    entry that is not a bin, is left out of the diagram instead of failing the report."""
    project = _project(tmp_path)
    good = {"low": 0.6, "high": 0.8, "count": 5, "confidence": 0.7, "accuracy": 0.6}
    with Registry.open(project / ".chief" / "registry.db") as registry:
        registry.record_eval(
            "demo:v2",
            suite_name="demo-suite",
            suite_version="v1",
            task="calibration",
            metrics=[MetricValue("ece", 0.1)],
            headline_metric="ece",
            settings={"reliability": [good, {"low": 0.0, "high": 0.2, "count": 3}, "not a bin"]},
        )
    result = CliRunner().invoke(cli, ["report", "--project", str(project)])
    assert result.exit_code == 0, result.output
    assert '<img alt="reliability diagram"' in (project / "report.html").read_text()
    from tinker_chief.reports.collect import collect, reliability_table

    calibration = [r for r in collect(project).results if r.task == "calibration"]
    tables = {r.model_ref: reliability_table(r) for r in calibration}
    assert [(b.confidence, b.accuracy, b.count) for b in tables["demo:v2"] or []] == [(0.7, 0.6, 5)]


def test_report_without_runs_or_registry_says_what_is_missing(tmp_path: Path) -> None:
    (tmp_path / "chief.toml").write_text(CHIEF_TOML)
    result = CliRunner().invoke(cli, ["report", "--project", str(tmp_path)])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "report.html").read_text()
    assert "No training runs yet" in page and "The registry has no models yet" in page
    assert "<img" not in page


def test_report_outside_a_project_is_a_clear_error(tmp_path: Path) -> None:
    from tinker_chief.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main(["report", "--project", str(tmp_path)])
    assert exc.value.code == 1


@pytest.mark.skipif(
    shutil.which("chromium") is None, reason="Debian chromium not installed (scripts/setup.sh)"
)
def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    project = _project(tmp_path)
    out = tmp_path / "report.html"
    assert (
        CliRunner()
        .invoke(cli, ["report", "--project", str(project), "--output", str(out)])
        .exit_code
        == 0
    )
    flags = [
        "chromium",
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    shot = tmp_path / "shot.png"
    subprocess.run(
        [*flags, f"--screenshot={shot}", "--window-size=1200,4000", out.as_uri()],
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 20_000
    dom = subprocess.run(
        [*flags, "--dump-dom", out.as_uri()],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    # The DOM Chromium built: four decoded images and the tables, with rows in them.
    assert len(re.findall(r"<img [^>]*src=\"data:image/png;base64,", dom)) == 4
    assert len(re.findall(r"<table", dom)) >= 5
    assert re.search(r"<td>demo:v1</td>", dom) and re.search(r"<td>demo:v2</td>", dom)


def test_report_links_each_versions_experiment_tracker_run(tmp_path: Path) -> None:
    project = _project(tmp_path)
    web = "http://127.0.0.1:5000/#/experiments/1/runs/abc123"
    run = {"name": "run-1"}
    trackers = {
        "mlflow": {**run, "backend": "mlflow", "run_id": "abc123", "url": web},
        "trackio": {**run, "backend": "trackio", "run_id": "f00", "where": "/data/trackio"},
        "wandb": {**run, "backend": "wandb", "run_id": "w1", "url": "javascript:alert(1)"},
    }
    config = {"trackers": trackers}
    with Registry.open(project / ".chief" / "registry.db") as registry:
        run_of = {"training_run_id": "run-1", "config": config}
        registry.register_model("demo", base_model="tiny-random-llama", **run_of)
    out = tmp_path / "report.html"
    assert CliRunner().invoke(cli, ["report", "-p", str(project), "-o", str(out)]).exit_code == 0
    page = out.read_text()
    table = page[page.index('<table class="trackers">') :]
    table = table[: table.index("</table>")]
    assert f'<a href="{web}">{web}</a>' in table and "abc123" in table
    assert "<td>/data/trackio</td>" in table and "f00" in table
    assert "javascript:" not in table and "<td>w1</td>" in table  # no web page: not linked
