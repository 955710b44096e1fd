"""Shared fixtures: every test gets a private project directory; models are cached per run."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("TINKER_TELEMETRY", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture
def project_dir(tmp_path, monkeypatch):
    """A fresh working directory for a test, so nothing leaks between tests."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
