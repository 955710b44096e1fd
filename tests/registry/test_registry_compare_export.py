"""compare (deltas, best, paired tests) and the deterministic MODEL_REGISTRY.md export."""

from __future__ import annotations

import json
import os
from html.parser import HTMLParser
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from tinker_chief.errors import RegistryError
from tinker_chief.registry import (
    DataFile,
    DataSummary,
    LoraSpec,
    MetricValue,
    Registry,
    SuiteRequirement,
    TaskRequirement,
)

from registry_helpers import SUITE, fixed_clock, outcomes, record_first_task, record_suite

GOLDEN = Path(__file__).parent / "golden" / "MODEL_REGISTRY.md"


def test_compare_models_by_metric(reg):
    refs = []
    for passes, nll in (
        ([True] * 50 + [False] * 50, 1.2),
        ([True] * 80 + [False] * 20, 0.9),
        ([True] * 52 + [False] * 48, 1.5),
    ):
        m = reg.register_model("bot", base_model="b")
        record_suite(
            reg, m.ref, passes, extra_qa=[MetricValue("nll", nll, nll - 0.1, nll + 0.1, 100)]
        )
        refs.append(m.ref)
    comparison = reg.compare(refs)
    assert comparison.models == refs
    assert [row.key for row in comparison.rows] == ["qa/accuracy", "qa/nll", "safety/refusal"]
    acc = comparison.row("qa/accuracy")
    assert acc.deltas == [0.0, pytest.approx(0.3), pytest.approx(0.02)] and acc.best == "bot:v2"
    assert acc.tests[0] is None
    assert (
        acc.tests[1].method == "mcnemar-chi2"
        and acc.tests[1].a_only == 30
        and acc.tests[1].p_value < 0.001
    )
    assert (
        acc.tests[2].method == "mcnemar-exact" and acc.tests[2].p_value == 0.5
    )  # b=2, c=0: 2 * (1/2)^2
    nll = comparison.row("qa/nll")
    assert not nll.higher_is_better and nll.best == "bot:v2" and nll.tests == [None, None, None]
    assert comparison.row("safety/refusal").best is None  # all equal: no best
    only = reg.compare(refs[:2], ["nll"])
    assert [row.key for row in only.rows] == ["qa/nll"]
    assert json.loads(json.dumps(comparison.to_dict()))["rows"][0]["tests"][1]["a_only"] == 30


def test_compare_needs_two_models(reg):
    m = reg.register_model("bot", base_model="b")
    with pytest.raises(RegistryError, match="at least two models"):
        reg.compare([m.ref])


def build_golden_registry(path: Path) -> Registry:
    reg = Registry.open(path, clock=fixed_clock())
    base = reg.register_model(
        "support-bot",
        base_model="SmolLM2-135M-Instruct-Q4_1",
        recipe="base",
        display_name="SmolLM2 base",
        actor="alice",
    )
    tuned = reg.register_model(
        "support-bot",
        base_model="SmolLM2-135M-Instruct-Q4_1",
        recipe="sl",
        parent=base.ref,
        tinker_path="tinker://local-run-7/sampler_weights/step-40",
        lora=LoraSpec(rank=32),
        optimizer={"name": "adamw", "lr": 0.0005, "schedule": "linear", "warmup_steps": 4},
        data=DataSummary((DataFile("data/train.jsonl", "0" * 64, 120),), 120, 48_000, 9_500),
        training_run_id="local-run-7",
        training_step=40,
        config={"seed": 0, "api_key": "tml-abcdefghijklmnop"},
        actor="alice",
    )
    reg.register_model("other", base_model="tiny-random-llama", backend="tinker", actor="bob")
    for ref, passes in (
        (base.ref, [True] * 40 + [False] * 60),
        (tuned.ref, [True] * 70 + [False] * 30),
    ):
        reg.record_eval(
            ref,
            suite_name="chat",
            suite_version="v1",
            task="qa",
            headline_metric="accuracy",
            metrics=[MetricValue("accuracy", sum(passes) / 100, 0.3, 0.8, 100)],
            samples=outcomes(passes),
            settings={"temperature": 0.0},
            actor="alice",
        )
        reg.record_eval(
            ref,
            suite_name="chat",
            suite_version="v1",
            task="safety",
            headline_metric="refusal",
            metrics=[MetricValue("refusal", 0.96, n=50)],
            actor="alice",
        )
    reg.promote(base.ref, "prod", suite=SUITE, actor="alice", reason="baseline")
    reg.promote(tuned.ref, "prod", suite=SUITE, actor="alice", reason="qa +30 points")
    reg.promote("other", "prod", suite=SUITE, actor="bob", reason="demo override", force=True)
    reg.retire(base.ref, actor="bob", reason="superseded")
    return reg


def test_export_markdown_matches_golden_and_is_deterministic(tmp_path):
    with build_golden_registry(tmp_path / "a.db") as reg:
        text = reg.export_markdown(suite=SUITE)
        assert reg.export_markdown(suite=SUITE) == text
    with build_golden_registry(tmp_path / "b.db") as reg:
        assert reg.export_markdown(suite=SUITE) == text  # another file, same history: same bytes
    if os.environ.get("CHIEF_UPDATE_GOLDEN"):  # regenerate deliberately, then review the diff
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text(), (
        "export changed; if intended, rerun with CHIEF_UPDATE_GOLDEN=1"
    )


def test_export_marks_chief_selects_choices(tmp_path):
    with build_golden_registry(tmp_path / "r.db") as reg:
        golden = GOLDEN.read_text().splitlines()
        old = reg.mark_selected("support-bot:v1", "sweep:s1", reason="first pick", actor="alice")
        new = reg.mark_selected(
            "support-bot:v2", "sweep:s1", reason="qa 0.7 vs 0.4 <b>", actor="alice"
        )
        lines = reg.export_markdown(suite=SUITE).splitlines()
        doc = reg.export_json(suite=SUITE)
    changed = [line for line in lines if line not in golden]
    assert changed == [
        "| `support-bot:v2` | staging, selected | SmolLM2-135M-Instruct-Q4_1 | sl "
        "| 2026-11-25T00:00:01Z | 0.7 | 0.96 |",
        "### Selected by `chief select`",
        f"- sweep:s1 on {old.at} by alice (superseded by a later selection): first pick",
        "### Selected by `chief select`",
        f"- sweep:s1 on {new.at} by alice: qa 0.7 vs 0.4 &lt;b&gt;",
    ]
    assert lines.index(changed[2]) < lines.index("## support-bot:v2") < lines.index(changed[4])
    other, base, tuned = doc["models"]
    assert other["selections"] == [] and [s["current"] for s in base["selections"]] == [False]
    assert (
        tuned["selections"][0]["scope"] == "sweep:s1"
        and tuned["selections"][0]["model_ref"] == "support-bot:v2"
    )


def test_export_json_has_the_same_content(tmp_path):
    with build_golden_registry(tmp_path / "r.db") as reg:
        doc = reg.export_json(suite=SUITE)
    assert [m["ref"] for m in doc["models"]] == ["other:v1", "support-bot:v1", "support-bot:v2"]
    assert doc["headline_metrics"] == ["qa/accuracy", "safety/refusal"]
    other, base, tuned = doc["models"]
    assert other["status"] == "prod" and other["missing_tasks"] == ["qa", "safety"]
    assert other["forced_promotions"][0]["reason"] == "demo override"
    assert base["status"] == "retired" and tuned["status"] == "staging"
    assert tuned["config"]["api_key"] == "[REDACTED]" and tuned["lora"]["rank"] == 32
    assert tuned["results"]["qa"]["metrics"]["accuracy"]["value"] == 0.7


# Markup a name could carry into a rendered MODEL_REGISTRY.md: raw HTML, a Markdown image, a
# backtick run (ends a code span), a pipe (ends a table cell) and line breaks (start a new block).
HOSTILE = "<img src=x onerror=alert(1)>![t](http://t.invalid/p.png)`` `|\n<script>s()</script>\r\n#"
# Without a pipe, text in a code span stays in one: only its backticks can end it early.
BACKTICKS = "`` `<img src=x onerror=alert(1)>`"


class _Rendered(HTMLParser):
    """What a browser would build from the rendered page: elements, attributes, tables, text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.tables: list[list[int]] = []  # per table, the number of cells of each row
        self.text: list[str] = []
        self.code: list[str] = []  # the text of each code span
        self._in_code = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))
        self._in_code = tag == "code"
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append(0)
        elif tag in ("td", "th"):
            self.tables[-1][-1] += 1

    def handle_endtag(self, tag: str) -> None:
        self._in_code = False

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._in_code:
            self.code.append(data)


def test_export_markdown_renders_stored_text_as_text(tmp_path):
    """Every stored string (suite, task, metric, version, display name, reason, optimizer key)
    shows literally in the rendered page and adds no element, attribute or table column."""
    task, metric = f"qa{HOSTILE}", f"acc{HOSTILE}"
    suite = SuiteRequirement(
        name=f"chat{BACKTICKS}",
        version=f"v1{HOSTILE}",
        tasks=[
            TaskRequirement(name=task, headline_metric=metric),
            TaskRequirement(name=f"missing{HOSTILE}"),
            TaskRequirement(name=f"{BACKTICKS}missing"),
        ],
    )
    with Registry.open(tmp_path / "r.db", clock=fixed_clock()) as reg:
        model = reg.register_model(
            "bot",
            base_model=f"b{HOSTILE}",
            display_name=f"d{HOSTILE}",
            optimizer={f"k{HOSTILE}": HOSTILE},
        )
        dataset = [{"path": HOSTILE}]
        settings = {"inspect_task": HOSTILE, "task_version": f"3{HOSTILE}", "dataset": dataset}
        record_first_task(reg, model.ref, suite, 0.5, ci=(0.4, 0.6), settings=settings)
        reg.promote(model.ref, "staging", reason=f"r{HOSTILE}", actor=f"a{HOSTILE}")
        reg.mark_selected(model.ref, f"sweep:{HOSTILE}", reason=HOSTILE, actor=HOSTILE)
        text = reg.export_markdown(suite=suite)
    page = _Rendered()
    page.feed(MarkdownIt("commonmark").enable("table").render(text))
    markdown_tags = {"h1", "h2", "h3", "p", "code", "strong", "ul", "li"}
    table_tags = {"table", "thead", "tbody", "tr", "th", "td"}
    assert {tag for tag, _ in page.tags} <= markdown_tags | table_tags
    assert [attrs for _, attrs in page.tags if attrs] == []
    assert len(page.tables) == 3  # all models, eval results, status history
    for rows in page.tables:
        assert len(set(rows)) == 1, rows  # every row has the header's number of cells
    assert page.tables[0][0] == 5 + 3  # model, status, base, recipe, created + one per suite task
    for code in (suite.name, f"{BACKTICKS}missing", f"chief eval bot:v1 --task {BACKTICKS}missing"):
        assert code in page.code  # each a whole code span, its backticks included
    shown = "".join(page.text)
    names = (suite.name, suite.version, task, metric, f"{task}/{metric}")
    for stored in (*names, f"3{HOSTILE}", f"d{HOSTILE}", f"r{HOSTILE}", f"k{HOSTILE}", HOSTILE):
        assert stored.replace("\r\n", " ").replace("\n", " ") in shown, (
            stored
        )  # line breaks: spaces
