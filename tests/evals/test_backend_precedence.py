"""One backend precedence for every command: flag > environment > `[backend]` > TINKER_API_KEY >
local.

Each rule is checked through `chief eval` (and `chief train` for the environment rule), run in
this process so the SDK's default cloud URL can be redirected to `fake_cloud`, the key-checking
engine that plays Tinker's cloud (tests/evals/conftest.py: only the cloud is faked). A dead URL
(nothing listens on port 9 of loopback) shows which layer was used: a command that takes it
fails with "cannot reach the backend at ... (from <the rule>)".
"""

from __future__ import annotations

import json
from pathlib import Path

from tinker_chief.connection import choose_backend

from cli_support import chief_in_process, init_math_project

TINY = "tiny-random-llama"
DEAD_URL = "http://127.0.0.1:9"


def _project(tmp_path: Path, backend_lines: str = "") -> Path:
    """A project from `chief init`; `backend_lines` go into its `[backend]` section."""
    project = init_math_project(tmp_path, rows=12)
    if backend_lines:
        toml = project / "chief.toml"
        toml.write_text(toml.read_text().replace("[backend]\n", f"[backend]\n{backend_lines}\n", 1))
    return project


def _eval(capsys, project: Path, *flags: str) -> tuple[object, dict | None, str]:
    code, out, err = chief_in_process(
        capsys, "eval", TINY, "--project", str(project), "--task", "val_nll", "--json", *flags
    )
    return (
        code,
        (json.loads(out.splitlines()[-1]) if code == 0 else None),
        err,
    )  # after init's lines


def _recorded_backend(project: Path, ref: str) -> str:
    from tinker_chief.registry import Registry

    with Registry.open(project / ".chief" / "registry.db") as registry:
        return registry.get_model(ref).backend


def test_a_flag_beats_the_environment(engine, tmp_path, capsys, monkeypatch):
    project = _project(tmp_path)
    monkeypatch.setenv("CHIEF_ENGINE_URL", DEAD_URL)
    code, _, err = _eval(capsys, project)
    assert (
        code != 0 and f"at {DEAD_URL} (from $CHIEF_ENGINE_URL)" in err
    )  # the environment decides...
    code, result, err = _eval(capsys, project, "--base-url", engine.base_url)
    assert code == 0, err  # ...until a flag says otherwise
    assert result["tasks"][0]["error"] is None


def test_the_environment_beats_the_project_backend_section(engine, tmp_path, capsys, monkeypatch):
    project = _project(tmp_path, f'base_url = "{DEAD_URL}"')
    code, _, err = _eval(capsys, project)
    assert (
        code != 0 and f"at {DEAD_URL} (from [backend] in chief.toml)" in err
    )  # `chief eval` reads [backend]...
    monkeypatch.setenv("CHIEF_ENGINE_URL", engine.base_url)
    code, result, err = _eval(capsys, project)
    assert code == 0, err  # ...and $CHIEF_ENGINE_URL wins over it
    assert result["tasks"][0]["error"] is None


def test_the_project_backend_section_beats_tinker_api_key(
    engine, cloud_default_url, tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("TINKER_API_KEY", cloud_default_url.api_key_for_clients)
    project = _project(tmp_path, f'kind = "local"\nbase_url = "{engine.base_url}"')
    code, result, err = _eval(capsys, project)
    assert code == 0, err
    assert _recorded_backend(project, result["model_ref"]) == "local"


def test_tinker_api_key_beats_the_local_engine(cloud_default_url, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TINKER_API_KEY", cloud_default_url.api_key_for_clients)
    project = _project(tmp_path)
    code, result, err = _eval(capsys, project)
    assert code == 0, err
    assert _recorded_backend(project, result["model_ref"]) == "tinker"
    assert not (project / ".chief" / "engine").exists()  # no local engine was started


def test_without_anything_a_local_engine_starts_in_the_project(tmp_path, capsys):
    project = _project(tmp_path)
    code, result, err = _eval(capsys, project)
    assert code == 0, err
    assert _recorded_backend(project, result["model_ref"]) == "local"
    assert (project / ".chief" / "engine").is_dir()


def test_project_kind_tinker_without_a_key_names_the_rule_and_the_variable(tmp_path, capsys):
    project = _project(tmp_path, 'kind = "tinker"')
    code, _, err = _eval(capsys, project)
    assert code != 0 and "Traceback" not in err
    assert "[backend] in chief.toml" in err and "TINKER_API_KEY" in err


def test_chief_engine_api_key_is_the_key_for_an_engine_at_a_url(
    fake_cloud, tmp_path, capsys, monkeypatch
):
    project = _project(tmp_path)
    monkeypatch.setenv("CHIEF_ENGINE_API_KEY", fake_cloud.api_key_for_clients)
    code, _, err = _eval(capsys, project, "--base-url", fake_cloud.base_url)
    assert code == 0, err
    monkeypatch.setenv("CHIEF_ENGINE_API_KEY", "tml-not-the-engines-key")
    fresh = _project(tmp_path / "again")  # nothing cached: the engine must be asked
    code, _, err = _eval(capsys, fresh, "--base-url", fake_cloud.base_url)
    assert code != 0 and "tml-not-the-engines-key" not in err


def test_chief_train_honours_the_environment_url(engine, tmp_path, monkeypatch):
    """Training reads the same environment as evals: `$CHIEF_ENGINE_URL` is the engine it uses."""
    from tests.training.conftest import make_project
    from tinker_chief.planning import load_project
    from tinker_chief.training import train_project

    project = make_project(tmp_path / "t", checkpoints={"every_steps": 100}, schedule={"epochs": 1})
    monkeypatch.setenv("CHIEF_ENGINE_URL", engine.base_url)
    result = train_project(load_project(project))
    assert result.status == "finished"
    assert not (project / ".chief" / "engine").exists()  # it trained on the engine at the URL


def test_choose_backend_names_the_rule_that_decided(monkeypatch):
    assert choose_backend().decided_by == "default" and choose_backend().starts_engine
    monkeypatch.setenv("TINKER_API_KEY", "tml-x")
    assert (choose_backend().kind, choose_backend().decided_by) == ("tinker", "$TINKER_API_KEY")
    assert choose_backend(project_kind="local").decided_by == "[backend] in chief.toml"
    monkeypatch.setenv("TINKER_BASE_URL", "http://127.0.0.1:1")
    assert choose_backend(project_kind="local").decided_by == "$TINKER_BASE_URL"
    monkeypatch.setenv("CHIEF_ENGINE_URL", "http://127.0.0.1:2")
    assert choose_backend().base_url == "http://127.0.0.1:2"
    assert (
        choose_backend("tinker").decided_by == "--backend"
        and choose_backend("tinker").base_url is None
    )
