"""One registry per project, whichever command opens it: `$CHIEF_REGISTRY` is honoured by
`chief train`, `eval`, `promote` and `report` alike (the test session clears every `CHIEF_*`
variable, so each command here gets it explicitly, as a user's shell would give it).
"""

from __future__ import annotations

from pathlib import Path

from tests.training.conftest import make_project
from tinker_chief.registry import Registry

from cli_support import run_chief


def test_chief_registry_is_the_one_database_of_train_eval_promote_and_report(
    tmp_path: Path, engine
) -> None:
    project = make_project(
        tmp_path / "proj",
        schedule={"batch_size": 8, "steps": 2},
        checkpoints={"every_steps": 0},
        inline_evals={"nll_every_steps": 0},
        eval_suite={
            "name": "tiny-suite",
            "tasks": [
                {
                    "name": "val_nll",
                    "layer": "training",
                    "kind": "nll",
                    "data": "data/heldout.jsonl",
                }
            ],
        },
    )
    shared = tmp_path / "elsewhere" / "team.db"
    shared.parent.mkdir()
    env: dict[str, str | None] = {"CHIEF_REGISTRY": str(shared)}
    where = ("--project", str(project))

    trained = run_chief("train", *where, "--base-url", engine.base_url, env=env)
    assert trained.returncode == 0, trained.stderr
    evaluated = run_chief("eval", "tiny:v1", *where, "--base-url", engine.base_url, env=env)
    assert evaluated.returncode == 0, evaluated.stderr
    promoted = run_chief("promote", "tiny:v1", "--to", "staging", *where, env=env)
    assert promoted.returncode == 0, promoted.stderr
    reported = run_chief("report", *where, env=env)
    assert reported.returncode == 0, reported.stderr

    assert not (project / ".chief" / "registry.db").exists()  # nothing went to the default file
    with Registry.open(shared, create=False, read_only=True) as registry:
        (model,) = registry.list_models()
        assert (model.ref, model.status) == ("tiny:v1", "staging")
        assert "val_nll" in registry.latest_results("tiny:v1")
    page = (project / "report.html").read_text()
    assert "tiny:v1" in page and "staging" in page
