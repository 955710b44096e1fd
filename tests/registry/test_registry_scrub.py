"""Secrets never reach the database file (main file or WAL) or the exports."""

from __future__ import annotations

import json

from tinker_chief.registry import (
    MetricValue,
    SampleOutcome,
    SuiteRequirement,
    TaskRequirement,
    scrub,
)
from tinker_chief.registry._scrub import REDACTED

from registry_helpers import SUITE, record_first_task

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
        "tolerances": {f"pasted {SECRETS[0]}": 0.01},  # a key is the user's text too
    }
    clean = scrub(raw)
    assert clean["tolerances"] == {f"pasted {REDACTED}": 0.01}
    assert clean["api_key"] == REDACTED and clean["nested"]["Authorization"] == REDACTED
    assert (
        clean["nested"]["TINKER_API_KEY"] == REDACTED and clean["list"][0]["password"] == REDACTED
    )
    assert clean["notes"] == f"used {REDACTED} here" and REDACTED in clean["list"][1]
    assert (clean["tokens"], clean["max_tokens"], clean["completion_tokens"], clean["lr"]) == (
        1200,
        64,
        7,
        1e-4,
    )


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


def test_names_paths_and_sample_ids_are_stored_scrubbed_and_still_found(reg, tmp_path):
    """A Tinker key pasted into a base model, tinker path, suite name or version, task, metric,
    sample id, config hash or selection scope never reaches the file; looking the row up by the
    text as given (tinker path, suite version, task, scope) still finds it."""
    key = "tml-" + "Zq9xW2" * 8
    path = f"tinker://run-{key}/sampler_weights/final"
    suite = SuiteRequirement(
        name=f"suite-{key}",
        version=f"v-{key}",
        tasks=[TaskRequirement(name=f"qa-{key}", headline_metric=f"acc-{key}")],
    )
    task, metric = suite.tasks[0].name, suite.tasks[0].headline_metric
    model = reg.register_model("bot", base_model=f"base-{key}", tinker_path=path, config_hash=key)
    record_first_task(reg, model.ref, suite, 1.0, samples=[SampleOutcome(f"id-{key}", 1.0, True)])
    run_id = reg.start_eval_run(
        model.ref,
        suite_name=suite.name,
        suite_version=suite.version,
        task=task,
    )
    reg.finish_eval_run(run_id, metrics=[MetricValue(metric, 0.5)], samples=[SampleOutcome(key, 1)])
    reg.mark_selected(model.ref, f"sweep:{key}", reason="best")

    files = b"".join(p.read_bytes() for p in tmp_path.glob("registry.db*"))  # main file, -wal, -shm
    assert key.encode() not in files and b"Zq9xW2" not in files
    assert reg.get_model(path).ref == model.ref
    (run,) = reg.latest_results(model.ref, suite.version).values()
    assert run.id == run_id and run.task == f"qa-{REDACTED}"
    assert run.suite_name == f"suite-{REDACTED}"
    assert len(reg.eval_runs(model.ref, task=task)) == 2
    assert [s.sample_id for s in reg.samples(run_id)] == [REDACTED]
    assert reg.selections(f"sweep:{key}")[0].model_ref == model.ref
    exported = reg.export_markdown(suite=suite) + json.dumps(reg.export_json(suite=suite))
    assert key not in exported and "missing or stale" not in exported  # the run counts
    report = reg.check_promotion(model.ref, "prod", suite=suite)
    assert report.passed and key not in json.dumps(report.to_dict())
