"""The playground: look at the models in the browser, side by side, and at the samples one fixed.

`chief playground` serves a local web page (127.0.0.1 only, a token in the printed URL,
foreign Hosts and Origins refused: `guard.py`) that
- chats with 2-4 models at once (registry versions, the backend's base models, any `tinker://`
  path), streaming each answer as it is sampled, with each token's probability and top
  alternatives, the prompt's per-token NLL, the exact tokens sent, edits that branch the chat,
  and a chat saved as an eval row in the project's JSONL format (`chat.py`, `picker.py`,
  `conversations.py`);
- shows the eval diff of two versions on a task, sample by sample (prompt, both answers, target,
  each verdict), filtered to where they disagree, under the paired test `chief compare` runs
  (`diffs.py`, reading the records chief keeps: `sample_records.py`);
- exports those diffs and the saved chats as a static site that opens from `file://`
  (`static_site.py`).
It reaches models the way every command does (`tinker_chief.connection`) and reads the registry
through its public API. The page (`static/`: one HTML file, one script, one style sheet, all in
the wheel) loads nothing from elsewhere. Starlette + uvicorn serve it (`web.py`, `serving.py`).
Only the CLI imports this package.
"""

from tinker_chief.playground.context import PlaygroundContext, load_context
from tinker_chief.playground.serving import PlaygroundServer
from tinker_chief.playground.static_site import ExportSummary, export_site
from tinker_chief.playground.web import PlaygroundState, make_app

__all__ = [
    "ExportSummary",
    "PlaygroundContext",
    "PlaygroundServer",
    "PlaygroundState",
    "export_site",
    "load_context",
    "make_app",
]
