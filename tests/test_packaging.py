"""The wheel, built offline from a copy of the project, holds the agent skill (SKILL.md) and every
data file of the package; the version is written once (`tinker_chief.__version__`); every
package-data pattern in pyproject.toml matches a real file."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import tinker_chief

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "tinker_chief"


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _data_files() -> set[str]:
    """Every file of the source package that is not Python source, as a path inside the wheel."""
    return {
        f"tinker_chief/{path.relative_to(PACKAGE).as_posix()}"
        for path in PACKAGE.rglob("*")
        if path.is_file() and path.suffix not in (".py", ".pyc") and "__pycache__" not in path.parts
    }


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[zipfile.ZipFile]:
    # A copy, so the build's egg-info and build/ never land in the working tree.
    project = tmp_path_factory.mktemp("project")
    shutil.copy(ROOT / "pyproject.toml", project)
    shutil.copy(ROOT / "README.md", project)
    shutil.copytree(
        ROOT / "src", project / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            str(project),
            "-w",
            str(project / "dist"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (built,) = (project / "dist").glob("tinker_chief-*.whl")
    with zipfile.ZipFile(built) as archive:
        yield archive


def test_the_wheel_ships_the_skill_and_every_data_file(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    assert "tinker_chief/SKILL.md" in names
    assert wheel.read("tinker_chief/SKILL.md") == (ROOT / "SKILL.md").read_bytes()
    assert _data_files() - names == set()


def test_the_wheel_carries_the_one_version(wheel: zipfile.ZipFile) -> None:
    assert "version" not in _pyproject()["project"], (
        "pyproject.toml must take the version from __init__"
    )
    (metadata,) = (name for name in wheel.namelist() if name.endswith(".dist-info/METADATA"))
    assert f"\nVersion: {tinker_chief.__version__}\n" in wheel.read(metadata).decode()


def test_every_package_data_pattern_matches_a_file() -> None:
    patterns = _pyproject()["tool"]["setuptools"]["package-data"]["tinker_chief"]
    unmatched = [
        pattern for pattern in patterns if not any(path.is_file() for path in PACKAGE.glob(pattern))
    ]
    assert unmatched == [], (
        f"package-data patterns that match no file under src/tinker_chief: {unmatched}"
    )
