"""The eval diff: per sample, both versions' answers and verdicts from the records chief keeps (the
eval cache, Inspect logs, eval-offline outputs), sorted into fixed/broken/both wrong/both right,
under exactly the paired test `chief compare` reports; its static export; the report's links."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from tests.playground.conftest import BASE_REF, CODES_FILE, FLIPS, TINY, invoke
from tinker_chief.playground import load_context
from tinker_chief.playground.diffs import build_diff, diff_catalog
from tinker_chief.registry import Registry

EXPECTED = {
    (False, True): "fixed",
    (True, False): "broken",
    (False, False): "both_wrong",
    (True, True): "both_right",
}


def _diff(project: Path, task: str, a: str, b: str) -> dict:
    context = load_context(project)
    with Registry.open(context.registry_path, create=False, read_only=True) as registry:
        return build_diff(context, registry, task, a, b)


def _compare_test(project: Path, a: str, b: str, metric: str) -> dict:
    output = invoke("compare", a, b, "--project", str(project), "--metric", metric, "--json")
    (row,) = json.loads(output)["rows"]
    return row["tests"][1]


def test_each_sample_falls_where_the_two_versions_outcomes_put_it(flips_project) -> None:
    diff = _diff(flips_project, "codes", BASE_REF, "tiny:v1")
    assert {s["id"]: s["category"] for s in diff["samples"]} == {
        sid: EXPECTED[f] for sid, f in FLIPS.items()
    }
    assert [s["id"] for s in diff["samples"]] == sorted(FLIPS, key=lambda sid: int(sid[1:]))
    assert (
        diff["counts"]["fixed"] == 3
        and diff["counts"]["broken"] == 1
        and diff["counts"]["both_wrong"] == 2
    )
    q1 = next(s for s in diff["samples"] if s["id"] == "q1")
    assert (
        q1["prompt"] == [{"role": "user", "content": "What is the secret code for w1?"}]
        and q1["target"] == "a"
    )
    assert q1["a"]["response"] == f"no idea ({BASE_REF})" and q1["a"]["passed"] is False
    assert (
        q1["b"]["response"] == "the code is a"
        and q1["b"]["correct"] is True
        and q1["b"]["explanation"] == "contains"
    )
    assert diff["notes"] == [] and diff["a"]["records"].endswith("codes.jsonl")


def test_the_paired_test_is_the_one_chief_compare_reports(flips_project) -> None:
    diff = _diff(flips_project, "codes", BASE_REF, "tiny:v1")
    compared = _compare_test(flips_project, BASE_REF, "tiny:v1", "codes/accuracy")
    test = diff["test"]
    assert test["method"] == compared["method"] == "mcnemar-exact"
    assert (test["p_value"], test["delta"], test["n"]) == (
        compared["p_value"],
        compared["delta"],
        compared["n"],
    )
    assert (test["fixed"], test["broken"]) == (compared["a_only"], compared["b_only"]) == (3, 1)
    # The other way round: what was fixed is now broken, and the difference changes sign.
    reverse = _diff(flips_project, "codes", "tiny:v1", BASE_REF)
    assert reverse["counts"]["broken"] == 3 and reverse["test"]["delta"] == -test["delta"]


def test_missing_records_leave_the_outcomes_and_say_what_is_missing(
    flips_project, tmp_path
) -> None:
    project = tmp_path / "copy"
    shutil.copytree(flips_project, project)
    shutil.rmtree(project / ".chief" / "eval-cache")
    diff = _diff(project, "codes", BASE_REF, "tiny:v1")
    assert {s["id"]: s["category"] for s in diff["samples"]} == {
        sid: EXPECTED[f] for sid, f in FLIPS.items()
    }
    assert all(s["prompt"] == [] and "response" not in s["a"] for s in diff["samples"])
    assert len(diff["notes"]) == 2 and all(
        "was the eval cache cleared?" in note for note in diff["notes"]
    )


def test_real_eval_records_and_inspect_logs_are_found_for_both_versions(evaluated_project) -> None:
    with Registry.open(evaluated_project / ".chief" / "registry.db", create=False) as registry:
        outcomes = {
            ref: {
                s.sample_id: s.passed
                for s in registry.samples(registry.latest_results(ref)["codes_inspect"].id)
            }
            for ref in (BASE_REF, "tiny:v3")
        }
    for task in ("codes", "codes_inspect"):
        diff = _diff(evaluated_project, task, BASE_REF, "tiny:v3")
        assert diff["notes"] == [], diff["notes"]
        assert [s["id"] for s in diff["samples"]] == [f"q{i}" for i in range(1, 8)]
        for sample in diff["samples"]:
            assert sample["prompt"][-1]["content"].startswith("What is the secret code for")
            assert sample["target"] == "a"
            assert isinstance(sample["a"]["response"], str) and isinstance(
                sample["b"]["response"], str
            )
            assert (
                sample["a"]["passed"] == sample["a"]["correct"]
                and sample["b"]["passed"] == sample["b"]["correct"]
            )
        compared = _compare_test(evaluated_project, BASE_REF, "tiny:v3", f"{task}/accuracy")
        assert (
            diff["test"]["p_value"] == compared["p_value"]
            and diff["test"]["fixed"] == compared["a_only"]
        )
    inspect_diff = _diff(evaluated_project, "codes_inspect", BASE_REF, "tiny:v3")
    assert inspect_diff["a"]["records"].endswith(".eval")
    for sample in inspect_diff["samples"]:
        pair = (outcomes[BASE_REF][sample["id"]], outcomes["tiny:v3"][sample["id"]])
        assert sample["category"] == EXPECTED[pair]


def test_two_eval_offline_outputs_of_one_file_diff_too(evaluated_project, engine, tmp_path) -> None:
    project = tmp_path / "offline"
    shutil.copytree(evaluated_project, project, ignore=shutil.ignore_patterns("registry.db*"))
    with Registry.open(evaluated_project / ".chief" / "registry.db", create=False) as registry:
        checkpoint = registry.get_model("tiny:v3").tinker_path
    outputs = {}
    for name, flag in (("base", ["--base-model", TINY]), ("tuned", ["--model-path", checkpoint])):
        out = project / ".chief" / "eval-offline" / name
        invoke(
            "eval-offline",
            *flag,
            "--data",
            str(project / CODES_FILE),
            "--grader",
            "contains",
            "--max-tokens",
            "4",
            "--temperature",
            "1.0",
            "--output",
            str(out),
            "--base-url",
            engine.base_url,
        )
        outputs[name] = [
            json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()
        ]
    context = load_context(project)
    task = f"offline:{project / CODES_FILE}"
    (entry,) = [t for t in diff_catalog(context, None) if t["kind"] == "offline"]
    assert entry["name"] == task and [v["ref"] for v in entry["versions"]] == ["base", "tuned"]
    diff = build_diff(context, None, task, "base", "tuned")
    verdicts = {name: {r["id"]: r["correct"] for r in rows} for name, rows in outputs.items()}
    for sample in diff["samples"]:
        assert (
            sample["category"]
            == EXPECTED[(verdicts["base"][sample["id"]], verdicts["tuned"][sample["id"]])]
        )
        assert sample["b"]["response"] == next(
            r["response"] for r in outputs["tuned"] if r["id"] == sample["id"]
        )
    assert (
        diff["test"]["fixed"] == diff["counts"]["fixed"]
        and diff["test"]["broken"] == diff["counts"]["broken"]
    )
    with pytest.raises(LookupError, match="no eval-offline output `gone`"):
        build_diff(context, None, task, "base", "gone")


def _export_data(site: Path) -> dict:
    text = (site / "data.js").read_text()
    assert text.startswith("window.CHIEF_EXPORT = ") and text.endswith(";\n")
    return json.loads(text.removeprefix("window.CHIEF_EXPORT = ").removesuffix(";\n"))


def test_the_export_holds_every_diff_both_ways_and_loads_nothing_from_elsewhere(
    flips_project, tmp_path
) -> None:
    (flips_project / "playground").mkdir(exist_ok=True)
    saved = {"id": "playground-x", "input": "hi", "output": "there", "metadata": {"model": TINY}}
    (flips_project / "playground" / "conversations.jsonl").write_text(json.dumps(saved) + "\n")
    site = tmp_path / "site"
    output = invoke("playground", "--project", str(flips_project), "--export", str(site))
    assert f"static playground written: {site / 'index.html'} (2 diffs, 1 saved rows)" in output
    assert sorted(p.relative_to(site).as_posix() for p in site.rglob("*")) == [
        "data.js",
        "index.html",
        "static",
        "static/playground.css",
        "static/playground.js",
    ]
    data = _export_data(site)
    assert data["mode"] == "static" and data["saved"] == [saved]
    forward = data["diffs"]["codes"][BASE_REF]["tiny:v1"]
    assert forward == json.loads(json.dumps(_diff(flips_project, "codes", BASE_REF, "tiny:v1")))
    assert data["diffs"]["codes"]["tiny:v1"][BASE_REF]["counts"]["broken"] == 3
    page = (site / "index.html").read_text()
    assert '<script src="data.js"></script>' in page
    # Everything the page loads is relative (no CDN, no absolute URL): it opens from file://.
    for text in (
        page,
        (site / "static" / "playground.js").read_text(),
        (site / "static" / "playground.css").read_text(),
    ):
        assert not re.search(r"""(src|href)=["'](https?:)?//""", text) and "@import" not in text
        assert not re.search(r"""fetch\(\s*["'`]https?:""", text)


def test_the_report_links_each_pair_to_its_diff_beside_it(flips_project, tmp_path) -> None:
    out = tmp_path / "out" / "report.html"
    invoke("report", "--project", str(flips_project), "--output", str(out))
    html = out.read_text()
    query = "task=codes&amp;a=base%2Ftiny-random-llama%3Av1&amp;b=tiny%3Av1"
    link = f'href="playground/index.html#diff?{query}"'
    assert link in html and "codes: tiny:v1 against base/tiny-random-llama:v1" in html
    assert (
        _export_data(out.parent / "playground")["diffs"]["codes"][BASE_REF]["tiny:v1"]["counts"][
            "fixed"
        ]
        == 3
    )
