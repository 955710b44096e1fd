"""Secrets never reach the database file (main file or WAL) or the exports."""

from __future__ import annotations

import json

from tinker_chief.registry import MetricValue, SampleOutcome, scrub
from tinker_chief.registry._scrub import REDACTED

from registry_helpers import SUITE

SECRETS = [
    "tml-9f8e7d6c5b4a39281706",
    "sk-ant-api03-abcdefghijklmnopqrstuvwxyz",
    "hf_AbCdEfGhIjKlMnOpQrStUv",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJlLXZhbHVl",
    "ghp_0123456789abcdefghijABCDEFGHIJ",
    "hunter2-plain-password",  # only caught by its key name
]


def test_scrub_keys_and_values_but_keeps_counts():
    raw = {
        "api_key": "anything",
        "nested": {"Authorization": "Bearer abcdefghijklmnopqrstu", "TINKER_API_KEY": "x"},
        "notes": f"used {SECRETS[0]} here",
        "tokens": 1200,
        "max_tokens": 64,
        "completion_tokens": 7,
        "list": [{"password": "p"}, "header: Bearer abcdefghijklmnopqrstuvwxyz"],
        "lr": 1e-4,
    }
    clean = scrub(raw)
    assert clean["api_key"] == REDACTED and clean["nested"]["Authorization"] == REDACTED
    assert clean["nested"]["TINKER_API_KEY"] == REDACTED and clean["list"][0]["password"] == REDACTED
    assert clean["notes"] == f"used {REDACTED} here" and REDACTED in clean["list"][1]
    assert (clean["tokens"], clean["max_tokens"], clean["completion_tokens"], clean["lr"]) == (1200, 64, 7, 1e-4)


def test_secrets_never_reach_db_bytes_or_export(reg, tmp_path):
    config = {
        "backend": {"api_key": SECRETS[0], "base_url": "http://x"},
        "hub": {"token": SECRETS[2]},
        "db": {"password": SECRETS[5]},
        "note": f"key {SECRETS[1]}",
        "lr": 1e-4,
    }
    m = reg.register_model(
        "bot",
        base_model="b",
        config=config,
        optimizer={"auth_token": SECRETS[4]},
        display_name=f"bot with {SECRETS[0]}",
        training_run_id=SECRETS[3],
    )
    reg.record_eval(
        m.ref,
        suite_name="chat",
        suite_version="v1",
        task="qa",
        metrics=[MetricValue("accuracy", 1.0)],
        settings={"judge_api_key": SECRETS[1]},
        samples=[SampleOutcome("a", 1.0, True, detail=f"echo {SECRETS[3]}")],
        log_location=f"s3://logs?token={SECRETS[4]}",
        error=None,
    )
    reg.promote(m.ref, "staging", reason=f"pasted {SECRETS[0]} by mistake", actor="ci")
    assert m.config["lr"] == 1e-4 and m.config["backend"]["base_url"] == "http://x"
    exports = reg.export_markdown(suite=SUITE) + json.dumps(reg.export_json(suite=SUITE))
    files = b"".join(p.read_bytes() for p in tmp_path.glob("registry.db*"))  # main file, -wal, -shm
    for secret in SECRETS:
        assert secret.encode() not in files, secret
        assert secret not in exports, secret
    assert REDACTED in exports
