"""Fixtures for registry tests: a real SQLite registry file per test with a fixed clock.

Nothing is faked: every test writes and reads a real database file under tmp_path.
"""

from __future__ import annotations

import pytest

from tinker_chief.registry import Registry

from registry_helpers import fixed_clock


@pytest.fixture
def reg(tmp_path):
    registry = Registry.open(tmp_path / "registry.db", clock=fixed_clock())
    yield registry
    registry.close()
