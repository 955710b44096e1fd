"""Fixtures for the playground tests, on the session's one real engine (`engine`, the tiny model).

- `evaluated_project`: a tiny project (tests/training's `make_project`) trained by the real
  `chief train` and evaluated by the real `chief eval` on its base model and its last checkpoint,
  on a jsonl task and the same file as an Inspect task: real registry rows, eval-cache records
  and Inspect logs.
- `flips_project`: registry rows and eval-cache records written directly through chief's own
  classes, with known flips between two versions (the tiny model's answers are noise, so which
  samples a real checkpoint flips is chance): `FLIPS` says which sample is which.
- `serving(context, connection)`: a playground server in a thread, as `chief playground` runs it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from tests.training.conftest import make_project
from tinker_chief.cli.main import cli

TINY = "tiny-random-llama"
BASE_REF = "base/tiny-random-llama:v1"  # how `chief eval` registers an unregistered base model
CODES_FILE = "data/codes.jsonl"
SUITE = {
    "name": "tiny-suite",
    "tasks": [
        {
            "name": "codes",
            "layer": "product",
            "kind": "jsonl",
            "data": CODES_FILE,
            "grader": "contains",
            "settings": {"max_tokens": 4},
        },
        {
            "name": "codes_inspect",
            "layer": "product",
            "kind": "inspect",
            "inspect_task": "tinker_chief/jsonl_task",
            "data": CODES_FILE,
            "settings": {"max_tokens": 4},
        },
    ],
}
# sample id -> (base right?, tuned right?): what the flips project's two versions got.
FLIPS = {
    "q1": (False, True),
    "q2": (False, True),
    "q3": (True, False),
    "q4": (False, False),
    "q5": (True, True),
    "q6": (False, False),
    "q7": (False, True),
}


def write_codes(root: Path) -> list[dict]:
    """Secret-code questions as eval rows: `{"id", "input", "output"}` (the answer: a letter the
    tiny model's noise sometimes contains, so `contains` scores vary between models)."""
    rows = [
        {"id": f"q{i}", "input": f"What is the secret code for w{i}?", "output": "a"}
        for i in range(1, 8)
    ]
    path = root / CODES_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return rows


def invoke(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


@pytest.fixture(scope="session")
def evaluated_project(engine, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("evaluated")
    make_project(root, eval_suite=SUITE)
    write_codes(root)
    invoke("train", "--project", str(root), "--base-url", engine.base_url)
    for model in (TINY, "tiny:v3"):
        invoke("eval", model, "--project", str(root), "--base-url", engine.base_url)
    return root


@pytest.fixture(scope="session")
def flips_project(tmp_path_factory) -> Path:
    from tinker_chief.evals.cache import TaskCache
    from tinker_chief.evals.records import SampleRecord
    from tinker_chief.paths import ProjectPaths
    from tinker_chief.planning import load_project
    from tinker_chief.registry import MetricValue, Registry, SampleOutcome

    root = tmp_path_factory.mktemp("flips")
    make_project(root, eval_suite=SUITE)
    rows = {row["id"]: row for row in write_codes(root)}
    project = load_project(root)
    version = project.config.eval_suite.version
    with Registry.open(project.registry_path) as registry:
        base = registry.register_model("base/tiny-random-llama", base_model=TINY, recipe="base")
        tuned = registry.register_model(
            "tiny", base_model=TINY, tinker_path="tinker://flips/sampler_weights/final"
        )
        for side, model in enumerate((base, tuned)):
            target = model.tinker_path or model.base_model
            cache = TaskCache(ProjectPaths(root).eval_cache, target, version, "codes")
            passed = {sid: flips[side] for sid, flips in FLIPS.items()}
            for sid, right in passed.items():
                answer = f"the code is {rows[sid]['output']}" if right else f"no idea ({model.ref})"
                prompt = [{"role": "user", "content": rows[sid]["input"]}]
                cache.append(
                    SampleRecord(
                        sid, prompt, rows[sid]["output"], answer, right, answer, "contains"
                    )
                )
            accuracy = sum(passed.values()) / len(passed)
            registry.record_eval(
                model.ref,
                suite_name=SUITE["name"],
                suite_version=version,
                task="codes",
                metrics=[MetricValue("accuracy", accuracy, n=len(passed))],
                samples=[SampleOutcome(sid, float(right), right) for sid, right in passed.items()],
                headline_metric="accuracy",
            )
    return root


@pytest.fixture
def connection(engine):
    from tinker_chief.connection import choose_backend, open_connection

    with open_connection(
        choose_backend(base_url=engine.base_url), api_key=engine.api_key_for_clients
    ) as opened:
        yield opened


@contextmanager
def serving(project: Path, connection=None, stream_tokens: int = 4) -> Iterator:
    """A playground for `project` (chat through `connection` when given) in a thread."""
    from tinker_chief.playground import PlaygroundServer, PlaygroundState, load_context

    server = PlaygroundServer(PlaygroundState(load_context(project), connection, stream_tokens))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(200):  # until uvicorn answers (the socket already listens)
            try:
                if httpx.get(server.url, timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            threading.Event().wait(0.05)
        yield server
    finally:
        server.stop()
        thread.join(timeout=20)


def client(server, **kwargs) -> httpx.Client:
    """An API client holding the server's token (as the page does after opening the URL)."""
    base = f"http://127.0.0.1:{server.port}"
    return httpx.Client(
        base_url=base, headers={"Authorization": f"token {server.token}"}, timeout=60, **kwargs
    )
