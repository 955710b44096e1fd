"""The opened project (`tinker_chief.workspace.Workspace`): chief.toml, the `.chief/` paths down
to a run's files, the registry by its one precedence and the backend with the project's
`[backend]` applied, on real files, a real SQLite registry and the session's real engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.training.conftest import TINY, make_project
from tinker_chief.connection import BackendChoice
from tinker_chief.errors import ConfigurationError
from tinker_chief.planning import Project, load_project
from tinker_chief.workspace import Workspace, registry_location

DEAD_URL = "http://127.0.0.1:9"
BY_PROJECT = "[backend] in chief.toml"


def _opened(root: Path, **sections: object) -> Workspace:
    return Workspace.open(make_project(root, **sections))


def test_open_reads_chief_toml_and_names_every_path(tmp_path: Path) -> None:
    workspace = _opened(tmp_path / "proj")
    root = (tmp_path / "proj").resolve()
    assert (workspace.root, workspace.config.name) == (root, "tiny")
    assert isinstance(workspace, Project)  # it goes wherever a loaded project does
    assert workspace.paths.engine_state == root / ".chief" / "engine"
    run = workspace.paths.run("run-1")
    assert run.dir == root / ".chief" / "runs" / "run-1"
    names = (run.spec.name, run.status.name, run.metrics.name, run.checkpoints.name)
    assert names == ("spec.json", "run.json", "metrics.jsonl", "checkpoints.jsonl")
    sweep = workspace.paths.sweep("sweep-1")
    assert sweep.state == root / ".chief" / "sweeps" / "sweep-1" / "sweep.json"
    assert workspace.paths.plan_json == root / "plan.json"


def test_open_without_a_project_is_one_line_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as error:
        Workspace.open(tmp_path)
    expected = f"{tmp_path / 'chief.toml'}: not found; create a project with `chief init`"
    assert str(error.value) == expected


def test_registry_flag_beats_the_environment_beats_chief_toml(tmp_path: Path, monkeypatch) -> None:
    project = make_project(tmp_path / "proj", registry="db/team.db")
    root = project.resolve()
    assert Workspace.open(project).registry_path == root / "db" / "team.db"  # not the default

    shared = tmp_path / "shared.db"
    monkeypatch.setenv("CHIEF_REGISTRY", str(shared))
    assert Workspace.open(project).registry_path == shared
    assert registry_location(project) == shared

    flag = tmp_path / "flag.db"
    workspace = Workspace.open(project, registry=flag)
    assert workspace.registry_path == flag and registry_location(project, flag) == flag
    with workspace.open_registry() as registry:
        registry.register_model("tiny", base_model=TINY, recipe="sl")
    assert flag.is_file() and not shared.exists() and not (root / "db").exists()
    # A project loaded elsewhere, opened with the flag, keeps it; a workspace stays itself.
    assert Workspace.of(load_project(project), flag).registry_path == flag
    assert Workspace.of(workspace) is workspace


def test_registry_location_without_a_project(tmp_path: Path, monkeypatch) -> None:
    assert registry_location(tmp_path) == tmp_path / ".chief" / "registry.db"
    monkeypatch.setenv("CHIEF_REGISTRY", str(tmp_path / "env.db"))
    assert registry_location(tmp_path) == tmp_path / "env.db"
    assert registry_location(tmp_path, tmp_path / "flag.db") == tmp_path / "flag.db"


def test_the_backend_choice_applies_the_projects_backend_section(
    tmp_path: Path, monkeypatch
) -> None:
    workspace = _opened(tmp_path / "proj", backend={"kind": "local", "base_url": DEAD_URL})
    assert workspace.backend_choice() == BackendChoice("local", DEAD_URL, BY_PROJECT)
    assert workspace.backend_choice("tinker") == BackendChoice("tinker", None, "--backend")
    monkeypatch.setenv("TINKER_API_KEY", "tml-x")  # [backend] comes before the key
    assert workspace.backend_choice().decided_by == BY_PROJECT
    monkeypatch.setenv("CHIEF_ENGINE_URL", "http://127.0.0.1:2")  # the environment before it
    expected = BackendChoice("local", "http://127.0.0.1:2", "$CHIEF_ENGINE_URL")
    assert workspace.backend_choice() == expected


def test_the_playground_chooses_its_backend_the_one_way(tmp_path: Path, monkeypatch) -> None:
    from tinker_chief.playground import load_context

    project = make_project(tmp_path / "proj", backend={"kind": "local", "base_url": DEAD_URL})
    monkeypatch.setenv("TINKER_API_KEY", "tml-x")
    chat = load_context(project)
    assert chat.backend_choice(None, None) == BackendChoice("local", DEAD_URL, BY_PROJECT)
    assert chat.backend_choice("tinker", None) == BackendChoice("tinker", None, "--backend")
    bare = load_context(tmp_path)  # no chief.toml: the same precedence without a [backend]
    assert bare.backend_choice(None, None).kind == "tinker"


def test_calibration_reaches_only_a_local_engine(tmp_path: Path) -> None:
    cloud = _opened(tmp_path / "cloud", backend={"kind": "tinker", "base_url": DEAD_URL})
    assert cloud.local_engine_choice().starts_engine  # never Tinker's cloud, even at a URL
    local = _opened(tmp_path / "local", backend={"kind": "local", "base_url": DEAD_URL})
    assert local.local_engine_choice() == BackendChoice("local", DEAD_URL, BY_PROJECT)


def test_connect_reaches_the_engine_and_connected_reuses_a_connection(
    tmp_path: Path, engine
) -> None:
    workspace = _opened(tmp_path / "proj")
    with workspace.connect(workspace.backend_choice(base_url=engine.base_url)) as connection:
        connection.check_serves(TINY)
        with workspace.connected(connection) as reused:
            assert reused is connection
        connection.sampling_client(base_model=TINY)  # still open after the reuse ended
    assert not workspace.paths.engine_state.exists()  # the engine at the URL, none started here
