"""The playground in a real browser: Debian's headless Chromium (/usr/bin/chromium) driven by
Playwright for Python, pointed at that system browser (`executable_path`; Playwright's own
browser downloads are never used). A prompt typed and sent brings two models' answers; hovering a
token shows its probability; the diff view of two evaluated versions lists the flipped samples;
the static export and the report's link to it work from `file://`."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlencode

import pytest

from tests.playground.conftest import BASE_REF, TINY, invoke, serving

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(
    not CHROMIUM.is_file(),
    reason="needs Debian's Chromium at /usr/bin/chromium (apt-get install chromium)",
)
sync_api = pytest.importorskip(
    "playwright.sync_api",
    reason="needs Playwright for Python: pip install -e '.[dev]' (no `playwright install`)",
)

FIXED = [
    "q1",
    "q2",
    "q7",
]  # the flips project: the checkpoint got these right, the base model wrong
BROKEN = ["q3"]
QUESTION = "What is the secret code for lapa?"
DIFF_QUERY = urlencode({"task": "codes", "a": BASE_REF, "b": "tiny:v1"})


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM))
        yield launched
        launched.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    yield opened
    context.close()
    assert errors == [], errors  # the page's script never threw


def _ready(page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("body[data-ready=true]")


def _sent(question: str) -> list[int]:
    """The tokens the project's renderer (ChatML) sends for one question."""
    from tinker_chief.models import get_renderer, load_tokenizer

    renderer = get_renderer("chatml", load_tokenizer(TINY))
    return renderer.build_generation_prompt([{"role": "user", "content": question}]).to_ints()


def _rows(page) -> list[str]:
    return page.locator("[data-testid=diff-row]").evaluate_all(
        "rows => rows.map(r => r.dataset.sample)"
    )


def test_two_models_answer_side_by_side_and_a_token_shows_its_probability(
    page, evaluated_project, connection
) -> None:
    with serving(evaluated_project, connection) as server:
        _ready(page, server.url)
        pickers = page.locator("[data-testid=model-picker]")
        assert pickers.evaluate_all("s => s.map(e => e.value)") == [TINY, "tiny:v3"]
        options = pickers.first.locator("option").evaluate_all("o => o.map(e => e.value)")
        assert {TINY, BASE_REF, "tiny:v1", "tiny:v2", "tiny:v3"} <= set(options)
        page.fill("#max-tokens", "10")
        page.fill("[data-testid=prompt]", QUESTION)
        page.click("[data-testid=send]")
        for model in (TINY, "tiny:v3"):
            pane = page.locator(f"[data-testid=answer][data-model='{model}']")
            pane.locator("[data-testid=answer-text][data-done=true]").wait_for(timeout=60_000)
            assert QUESTION in pane.inner_text()
            assert pane.locator(".tok").count() > 0
        page.locator("[data-testid=answer][data-model='tiny:v3'] .tok").first.hover()
        info = page.locator("[data-testid=token-info]")
        info.wait_for(state="visible")
        assert re.fullmatch(
            r"p = 0\.\d+ \(log-prob -\d+\.\d+\)",
            page.locator("[data-testid=token-prob]").inner_text(),
        )
        assert info.locator("tr").count() == 5  # the top alternatives
        page.locator("[data-testid=answer][data-model='tiny:v3']").locator("..").locator(
            "[data-testid=show-tokens]"
        ).click()
        chips = page.locator("[data-testid=prompt-tokens] .chip")
        assert chips.count() == len(_sent(QUESTION)) and chips.first.inner_text() == "<|im_start|>"


def test_an_edited_question_continues_every_model_and_a_chat_saves_as_a_row(
    page, evaluated_project, connection
) -> None:
    with serving(evaluated_project, connection) as server:
        _ready(page, server.url)
        page.fill("#max-tokens", "4")
        page.fill("[data-testid=prompt]", "first question")
        page.click("[data-testid=send]")
        done = "[data-testid=answer-text][data-done=true]"
        page.locator(done).nth(1).wait_for(timeout=60_000)
        pane = page.locator(f"[data-testid=answer][data-model='{TINY}']")
        pane.locator(".turn.user button").click()
        page.fill("[data-testid=edit-box]", "second question")
        page.click("[data-testid=edit-continue]")
        page.locator(done).nth(1).wait_for(timeout=60_000)
        for model in (TINY, "tiny:v3"):
            text = page.locator(f"[data-testid=answer][data-model='{model}']").inner_text()
            assert "second question" in text and "first question" not in text
        page.locator("[data-testid=save-row]").first.click()
        page.wait_for_selector("#banner.info")
        assert (
            page.locator("[data-testid=banner]")
            .inner_text()
            .startswith("saved to playground/conversations.jsonl")
        )
        page.click("#nav-saved")
        row = page.locator("[data-testid=saved-row]").last
        assert "second question" in row.inner_text() and TINY in row.inner_text()


def test_the_diff_view_lists_the_samples_the_checkpoint_fixed(page, flips_project) -> None:
    with serving(flips_project) as server:  # no backend: the diff alone
        _ready(page, server.url)
        assert page.locator("#nav-chat").is_hidden() and page.locator("#view-diff").is_visible()
        assert page.locator("[data-testid=diff-a]").input_value() == BASE_REF
        assert page.locator("[data-testid=diff-b]").input_value() == "tiny:v1"
        page.wait_for_selector("[data-testid=diff-row]")
        assert _rows(page) == ["q1", "q2", "q3", "q7"]  # where they disagree
        summary = page.locator("[data-testid=diff-test]").inner_text()
        assert (
            "mcnemar-exact: n = 7 paired samples; B fixed 3, broke 1" in summary
            and "p = 0.625" in summary
        )
        page.click("[data-testid=filter-fixed]")
        assert _rows(page) == FIXED
        row = page.locator("[data-testid=diff-row][data-sample=q1]")
        assert "no idea" in row.inner_text() and "the code is a" in row.inner_text()
        page.click("[data-testid=filter-both_wrong]")
        assert _rows(page) == ["q4", "q6"]
        page.click("[data-testid=diff-swap]")
        sync_api.expect(page.locator("[data-testid=diff-a]")).to_have_value("tiny:v1")
        page.click("[data-testid=filter-broken]")
        assert _rows(page) == FIXED  # the other way round, what was fixed is broken


def test_the_static_export_and_the_reports_link_open_from_file(
    page, flips_project, tmp_path
) -> None:
    report = tmp_path / "out" / "report.html"
    invoke("report", "--project", str(flips_project), "--output", str(report))
    page.goto(report.as_uri())
    page.click("a[href^='playground/index.html#diff']")
    page.wait_for_selector("[data-testid=diff-row]")
    assert page.url.startswith("file://") and page.url.endswith(f"#diff?{DIFF_QUERY}")
    assert _rows(page) == ["q1", "q2", "q3", "q7"]
    assert (
        page.locator("#nav-chat").is_hidden()
        and "static export" in page.locator("#backend").inner_text()
    )
    page.click("[data-testid=filter-broken]")
    assert _rows(page) == BROKEN
