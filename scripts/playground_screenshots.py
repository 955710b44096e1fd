"""Screenshots of `chief playground` for docs/PLAYGROUND.md, taken on a project (the demo's).

    python scripts/playground_screenshots.py --project demo-project

Starts the playground on the project exactly as `chief playground` does (its backend, chosen by
`tinker_chief.connection`), then drives Debian's Chromium (/usr/bin/chromium) through Playwright:
asks the first held-out question of the custom task of the base model and the prod checkpoint
side by side, hovers a token of the checkpoint's answer, and opens the eval diff of that task
filtered to the samples the checkpoint fixed. Writes docs/images/playground-chat.png and
docs/images/playground-diff.png.
"""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

from tinker_chief.connection import choose_backend, open_connection
from tinker_chief.evals.data import load_samples
from tinker_chief.playground import PlaygroundServer, PlaygroundState, load_context

IMAGES = Path(__file__).resolve().parents[1] / "docs" / "images"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=Path("demo-project"))
    parser.add_argument("--task", default="secret_code", help="the suite task to ask from and diff")
    args = parser.parse_args()
    context = load_context(args.project)
    assert context.project is not None, f"{args.project}: no chief.toml"
    task = context.project.config.eval_suite.task(args.task)
    question = load_samples(context.project.path(task.data or ""))[0].messages[-1]["content"]
    section = context.backend_section()
    choice = choose_backend(project_kind=section["kind"], project_url=section["url"])
    models = [context.base_model or ""]
    with open_connection(choice, state_dir=context.paths.engine_state, models=models) as connection:
        server = PlaygroundServer(PlaygroundState(context, connection, stream_tokens=8))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        time.sleep(1)
        try:
            shoot(server.url, question, args.task)
        finally:
            server.stop()
            thread.join(timeout=20)


def shoot(url: str, question: str, task: str) -> None:
    IMAGES.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium")
        page = browser.new_page(viewport={"width": 1280, "height": 760})
        page.goto(url)
        page.wait_for_selector("body[data-ready=true]")
        page.fill("#temperature", "0")
        page.fill("#max-tokens", "24")
        page.click("#settings summary")  # folded: more room for the answers
        page.fill("[data-testid=prompt]", question)
        page.click("[data-testid=send]")
        answers = page.locator("[data-testid=answer-text][data-done=true]")
        answers.nth(1).wait_for(timeout=300_000)
        checkpoint = page.locator("[data-testid=answer]").nth(1)
        checkpoint.locator(".tok").first.hover()
        page.screenshot(path=str(IMAGES / "playground-chat.png"))
        page.goto(url.split("?")[0] + f"#diff?task={task}&filter=fixed")
        page.wait_for_selector("[data-testid=diff-row]")
        page.screenshot(path=str(IMAGES / "playground-diff.png"))
        browser.close()


if __name__ == "__main__":
    main()
