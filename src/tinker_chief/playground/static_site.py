"""`chief playground --export DIR`: the eval diffs and saved conversations as a static site.

The same page as the live playground (`static/index.html` and its script), plus `data.js`, which
sets `window.CHIEF_EXPORT` to every diff precomputed: each task's versions pairwise, both ways
(the most recent `MAX_VERSIONS` per task), and the saved conversation rows. A `<script>` file
rather than JSON fetched at run time, because a page opened from `file://` may not fetch.
Nothing is loaded from elsewhere: the folder can be zipped, mailed or served by anything.
Chat needs a backend, so the export has none.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

from tinker_chief.errors import ConfigurationError
from tinker_chief.playground import conversations, diffs
from tinker_chief.playground.context import PlaygroundContext
from tinker_chief.playground.web import ASSETS, EXPORT_DATA_MARK, asset_text

MAX_VERSIONS = 12  # per task: 12 versions are 132 diffs; older ones are left out (and said so)
DATA_FILE = "data.js"


class ExportData(TypedDict):
    """What `data.js` hands the static page (`window.CHIEF_EXPORT`)."""

    mode: str
    project: str
    exported_at: str
    tasks: list[diffs.DiffTask]
    diffs: dict[str, dict[str, dict[str, dict[str, object]]]]  # task -> a -> b -> the diff
    saved: list[dict[str, object]]
    left_out: list[str]


@dataclass(frozen=True)
class ExportSummary:
    index: Path
    diffs: int
    saved: int
    left_out: list[str]


def export_data(context: PlaygroundContext) -> ExportData:
    """Everything the static page shows, as one JSON-able object."""
    all_diffs: dict[str, dict[str, dict[str, dict[str, object]]]] = {}
    left_out = []
    registry = context.open_registry()
    try:
        tasks = diffs.diff_catalog(context, registry)
        for task in tasks:
            if len(task["versions"]) > MAX_VERSIONS:
                dropped = task["versions"][:-MAX_VERSIONS]
                left_out += [f"{task['name']}: {v['ref']}" for v in dropped]
                task["versions"] = task["versions"][-MAX_VERSIONS:]
            refs = [v["ref"] for v in task["versions"]]
            for a in refs:
                for b in refs:
                    if a != b:
                        diff = diffs.build_diff(context, registry, task["name"], a, b)
                        all_diffs.setdefault(task["name"], {}).setdefault(a, {})[b] = diff
    finally:
        if registry is not None:
            registry.close()
    return {
        "mode": "static",
        "project": context.name,
        "exported_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "tasks": tasks,
        "diffs": all_diffs,
        "saved": conversations.saved_conversations(context),
        "left_out": left_out,
    }


def export_site(context: PlaygroundContext, out_dir: Path) -> ExportSummary:
    """Write the static site into `out_dir` (created; only the site's own files are replaced)."""
    data = export_data(context)
    try:
        (out_dir / "static").mkdir(parents=True, exist_ok=True)
        for name in ASSETS:
            _write(out_dir / "static" / name, asset_text(name))
        _write(out_dir / DATA_FILE, f"window.CHIEF_EXPORT = {json.dumps(data)};\n")
        page = asset_text("index.html").replace(
            EXPORT_DATA_MARK, f'<script src="{DATA_FILE}"></script>'
        )
        _write(out_dir / "index.html", page)
    except OSError as exc:
        raise ConfigurationError(
            f"--export {out_dir}: cannot write the site ({exc.strerror or exc})"
        ) from None
    count = sum(len(by_b) for by_a in data["diffs"].values() for by_b in by_a.values())
    return ExportSummary(out_dir / "index.html", count, len(data["saved"]), data["left_out"])


def _write(path: Path, text: str) -> None:
    staging = path.with_name(path.name + ".tmp")
    staging.write_text(text, encoding="utf-8")
    staging.replace(path)
