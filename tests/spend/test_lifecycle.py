"""The checkpoint lifecycle the registry drives, on the real engine through the unmodified SDK.

`chief train` saves checkpoints with `[checkpoints] ttl_days`; promotion clears the TTL of the
version's checkpoints, retiring sets one again, and `chief registry gc` deletes exactly the
weights of retired versions (prod still samples, a deleted path is a 404). Every expiry is read
back through `RestClient.list_checkpoints` (`expires_at`), as a user would.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import tinker
from click.testing import CliRunner
from tinker import types

from tests.training.conftest import make_project
from tinker_chief.cli.main import cli
from tinker_chief.registry import Registry, weight_paths

from cli_support import chief_in_process


def chief(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def trained(tmp_path_factory, engine):
    """A project trained on the tiny model: tiny:v1..v3 (steps 2, 4, 6), each with a TTL."""
    project = make_project(tmp_path_factory.mktemp("lifecycle"))
    chief("train", "--project", str(project), "--base-url", engine.base_url)
    return project


def registry(project: Path) -> Registry:
    return Registry.open(project / ".chief" / "registry.db", create=False)


def expiries(engine, project: Path) -> dict[str, datetime | None]:
    """tinker path -> expires_at of every checkpoint of the project's run, as the SDK lists them."""
    with registry(project) as reg:
        run_ids = {m.config["engine_run_id"] for m in reg.list_models()}
    rest = tinker.RestClient(base_url=engine.base_url, api_key=engine.api_key_for_clients)
    return {
        c.tinker_path: c.expires_at
        for run in run_ids
        for c in rest.list_checkpoints(run).result().checkpoints
    }


def paths_of(project: Path, ref: str) -> list[str]:
    with registry(project) as reg:
        return weight_paths(reg.get_model(ref))


def in_days(moment: datetime | None) -> float:
    assert moment is not None
    return (moment - datetime.now(UTC)) / timedelta(days=1)


def lifecycle(project: Path, engine, *args: str) -> str:
    return chief(*args, "--project", str(project), "--base-url", engine.base_url)


def test_ttl_follows_status_and_gc_deletes_exactly_the_retired(trained, engine, capsys):
    project = trained
    listed = expiries(engine, project)
    assert len(listed) == 6 and all(6.9 < in_days(at) <= 7 for at in listed.values())
    with registry(project) as reg:
        assert all(reg.weights(f"tiny:v{n}").expires_at for n in (1, 2, 3))

    lifecycle(project, engine, "promote", "tiny:v2", "--to", "staging")
    lifecycle(project, engine, "promote", "tiny:v3", "--to", "prod", "--force", "--reason", "test")
    listed = expiries(engine, project)
    for ref in ("tiny:v2", "tiny:v3"):
        assert [listed[p] for p in paths_of(project, ref)] == [None, None]
    assert all(listed[p] is not None for p in paths_of(project, "tiny:v1"))

    lifecycle(project, engine, "retire", "tiny:v2", "--reason", "superseded")
    lifecycle(project, engine, "retire", "tiny:v1")
    listed = expiries(engine, project)
    assert all(6.9 < in_days(listed[p]) <= 7 for p in paths_of(project, "tiny:v2"))  # set again
    with registry(project) as reg:
        assert reg.weights("tiny:v2").expires_at and reg.weights("tiny:v3").expires_at is None
        commands = [
            (e.command, e.target) for e in reg.audit_log() if e.command.startswith("weights-")
        ]
    assert ("weights-ttl", "tiny:v2") in commands and ("weights-ttl", "tiny:v3") in commands

    dry = lifecycle(project, engine, "registry", "gc", "--dry-run")
    assert (
        "would free" in dry
        and "tiny:v1" in dry
        and "tiny:v2" in dry
        and "tiny:v3" not in dry.split("kept")[0]
    )
    assert expiries(engine, project) == listed  # nothing deleted by a dry run

    done = lifecycle(project, engine, "registry", "gc")
    assert "freed" in done and "monthly cost unknown" in done
    remaining = expiries(engine, project)
    assert sorted(remaining) == sorted(paths_of(project, "tiny:v3"))

    client = tinker.ServiceClient(base_url=engine.base_url, api_key=engine.api_key_for_clients)
    prod = client.create_sampling_client(model_path=paths_of(project, "tiny:v3")[0]).result()
    prompt, params = types.ModelInput.from_ints([5, 6, 7]), types.SamplingParams(max_tokens=2)
    assert prod.sample(prompt, 1, params).result().sequences
    with pytest.raises(tinker.NotFoundError):
        client.create_sampling_client(model_path=paths_of(project, "tiny:v1")[0]).result()
    client.close("success").result()

    with registry(project) as reg:
        gone = reg.weights("tiny:v1")
        assert gone.deleted_at and gone.deleted_bytes > 0
    day = gone.deleted_at[:10]
    shown = chief("registry", "show", "tiny:v1", "--project", str(project))
    assert f"weights: deleted on {day}" in shown
    code, _, err = chief_in_process(capsys, "eval", "tiny:v1", "--project", str(project))
    assert (
        code == 1
        and err.startswith("Error: tiny:v1: weights deleted on")
        and len(err.splitlines()) == 1
    )


def test_gc_refuses_while_a_run_is_training(tmp_path, engine, capsys):
    from tinker_chief.training import RunLog

    project = make_project(tmp_path)
    RunLog.create(project, {}, {"backend": "local"})  # a run this (live) process is training
    code, _, err = chief_in_process(
        capsys, "registry", "gc", "--project", str(project), "--base-url", engine.base_url
    )
    assert (
        code == 1
        and "is training; run gc when it has finished" in err
        and len(err.splitlines()) == 1
    )


def test_gc_rules_on_a_real_registry(tmp_path):
    """Which versions gc deletes: retired, unchosen sweep points, expired candidates; never prod,
    staging or what they were trained from."""
    with Registry.open(tmp_path / "r.db") as reg:

        def version(n: int, parent: str | None = None, sweep: str | None = None) -> str:
            config = {"state_path": f"tinker://run/weights/{n}"}
            if sweep:
                config["sweep"] = {"id": sweep, "point": str(n)}
            path = f"tinker://run/sampler_weights/{n}"
            return reg.register_model(
                "m", base_model="b", tinker_path=path, parent=parent, config=config
            ).ref

        base, child = version(1), None
        child = version(2, parent=base)
        reg.promote(child, "staging")
        retired = version(3)
        reg.retire(retired)
        point_a, point_b = version(4, sweep="s1"), version(5, sweep="s1")
        reg.mark_selected(point_b, "sweep:s1")
        unchosen_sweep = version(6, sweep="s2")  # no selection yet: kept
        expired, fresh = version(7), version(8)
        reg.set_weights_expiry(expired, datetime.now(UTC) - timedelta(hours=1))
        reg.set_weights_expiry(fresh, datetime.now(UTC) + timedelta(days=1))
        found = {d.model.ref: d.why for d in reg.gc_candidates()}
        assert set(found) == {retired, point_a, expired}
        assert reg.protected_models() == {child: "staging", base: "parent of staging m:v2"}
        reg.mark_weights_deleted(retired, 10)
        assert {d.model.ref for d in reg.gc_candidates()} == {point_a, expired}
        assert unchosen_sweep not in found and fresh not in found
