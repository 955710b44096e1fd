"""The rule a registered model's name keeps.

A project's name (chief.toml `name`) is the name its checkpoints are registered under, so
planning checks it by this rule when chief.toml is read and `chief init` before it writes
anything: a name the registry would refuse is caught there, not at a run's first checkpoint.
"""

from __future__ import annotations

import re

from tinker_chief.registry._scrub import scrub_text

MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-/]{0,127}$")
MODEL_NAME_EXPECTED = (
    "letters, digits, '_', '.', '-' or '/', starting with a letter or digit, at most 128 characters"
)


def model_name_problem(name: object) -> str | None:
    """None when `name` can name a registered model, else what a name must be instead."""
    if not isinstance(name, str) or not MODEL_NAME.match(name):
        return MODEL_NAME_EXPECTED
    if scrub_text(name) != name:
        return "a model name, not something that looks like an API key or token"
    return None
