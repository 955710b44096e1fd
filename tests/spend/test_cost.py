"""`chief cost` on the real engine: a train and an eval of the tiny model, whose billed tokens
(the engine's billing API, read through the unmodified SDK) equal chief's own counts exactly,
with the plan's estimate beside them; a refused billing API is one line, the counts still show."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.training.test_sweep import _suite_project
from tinker_chief.registry import Registry
from tinker_chief.training import RunLog

from cli_support import chief_in_process


@pytest.fixture(scope="module")
def spent(tmp_path_factory, engine):
    """A project that trained (3 steps; inline NLL evals at 0 and 3, the last after the final
    checkpoint) and evaluated its candidate with the held-out NLL and a small generative task."""
    from click.testing import CliRunner

    from tinker_chief.cli.main import cli

    project = _suite_project(tmp_path_factory.mktemp("cost"))
    for args in (("train",), ("eval", "tiny:v1")):
        result = CliRunner().invoke(
            cli, [*args, "--project", str(project), "--base-url", engine.base_url]
        )
        assert result.exit_code == 0, result.output
    return project


def cost(capsys, project: Path, engine, *args: str) -> dict:
    code, out, err = chief_in_process(
        capsys, "cost", *args, "--project", str(project), "--base-url", engine.base_url, "--json"
    )
    assert code == 0, err
    return json.loads(out)


def test_billed_tokens_equal_chiefs_counts_on_the_engine(spent, engine, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # rich wraps no cell this test reads
    report = cost(capsys, spent, engine)
    assert report["billing"] == "billed usage of 2 session(s) read from the billing API"
    assert report["prices"].startswith("prices.toml (as of ")
    items = {item["scope"].split(":")[0]: item for item in report["items"]}
    run, evaluation = items["run"], items["eval"]
    assert run["models"] == ["tiny:v1"] and evaluation["models"] == ["tiny:v1"]
    for item in (run, evaluation):
        assert item["billed"] == item["counted"], (
            item
        )  # tokens by kind, and no price for the tiny model
        assert item["billed_usd_from"] == "table" and item["estimate"] is not None
    with Registry.open(spent / ".chief" / "registry.db", create=False) as reg:
        last = reg.get_model("tiny:v1").usage
        evals = [r.usage for r in reg.eval_runs("tiny:v1")]
    (run_dir,) = (spent / ".chief" / "runs").iterdir()
    logged = RunLog(run_dir).usage(
        3
    )  # the whole run: its last inline eval comes after its checkpoint
    counted = (run["counted"]["train"], run["counted"]["prefill"], run["counted"]["sample"])
    assert counted == (logged["train/tokens"], logged["prefill/tokens"], logged["sample/tokens"])
    assert last.train_tokens == counted[0] and last.prefill_tokens < counted[1]
    assert (
        run["counted"]["sample"] > 0
    )  # the inline NLL evals' compute_logprobs each sample one token
    assert evaluation["counted"]["prefill"] == sum(u.prefill_tokens for u in evals)
    assert (
        evaluation["estimate"]["prefill"] == evaluation["counted"]["prefill"]
    )  # the plan renders the same prompts
    assert run["estimate"]["train"] >= run["counted"]["train"] > 0

    only = cost(capsys, spent, engine, "tiny:v1", "--no-billing")
    assert only["billing"].startswith("not asked") and len(only["items"]) == 2
    assert [i["scope"] for i in cost(capsys, spent, engine, "--since", "2999-01-01")["items"]] == []

    code, out, err = chief_in_process(
        capsys, "cost", "--project", str(spent), "--base-url", engine.base_url
    )
    assert code == 0, err
    assert (
        "billed - counted" in out and "+0 tokens" in out and "dollars at prices.toml (as of" in out
    )

    # What was billed, as last read, in `registry show`, MODEL_REGISTRY.md and the report.
    c = run["counted"]
    kinds = f"{c['train']:,} trained, {c['prefill']:,} prefilled, {c['sample']:,} sampled"
    billed = f"{c['total']:,} tokens billed ({kinds})"
    code, out, err = chief_in_process(
        capsys, "registry", "show", "tiny:v1", "--project", str(spent)
    )
    assert code == 0 and f"training run billed: {billed}" in out, err
    code, out, err = chief_in_process(
        capsys, "registry", "export", "--project", str(spent), "--output", "-"
    )
    assert code == 0 and f"- training run billed: {billed}" in out, err
    from tinker_chief.reports.collect import collect

    assert collect(spent).costs["tiny:v1"][2] == billed


class _NoBillingRole(BaseHTTPRequestHandler):
    """Tinker's service as a key without the billing role sees it: the SDK's handshake works, the
    billing API answers 403."""

    def do_POST(self) -> None:
        if self.path == "/api/v1/client/config":
            self._send(200, {})
        else:
            self._send(404, {"error": "no route"})

    def do_GET(self) -> None:
        if self.path.startswith("/api/v1/billing/"):
            self._send(403, {"error": "this key has no billing role"})
        else:
            self._send(404, {"error": "no route"})

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


def test_a_refused_billing_api_is_one_line_and_counts_still_show(spent, capsys):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NoBillingRole)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        code, out, err = chief_in_process(
            capsys, "cost", "--project", str(spent), "--base-url", url, "--json"
        )
    finally:
        server.shutdown()
    assert code == 0, err
    report = json.loads(out)
    assert report["billing"].startswith("the billing API refused (no billing role for this key: ")
    assert report["billing"].endswith("): showing chief's counted figures only")
    assert len(report["billing"].splitlines()) == 1
    assert all(
        item["counted"]["train"] + item["counted"]["prefill"] > 0 for item in report["items"]
    )


def test_bad_since_is_one_line(spent, engine, capsys):
    code, _, err = chief_in_process(capsys, "cost", "--project", str(spent), "--since", "last week")
    assert (
        code == 1 and err.strip() == "Error: --since: expected a date YYYY-MM-DD, got 'last week'"
    )
