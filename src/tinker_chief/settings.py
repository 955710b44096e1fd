"""Settings read from the environment, with one-line errors.

A shared leaf (it imports only `errors`): `positive_seconds` reads a duration such as
`CHIEF_HUB_TIMEOUT`, `CHIEF_ENGINE_READ_TIMEOUT` or `CHIEF_ENGINE_EXPIRY_SWEEP_S`, and
`log_level` a logging level such as `CHIEF_ENGINE_LOG`.
"""

from __future__ import annotations

import math
import os

from tinker_chief.errors import ConfigurationError


def positive_seconds(name: str, default: float) -> float:
    """The positive, finite number of seconds in the environment variable `name` (`default` when
    it is unset or blank), or a `ConfigurationError` naming the variable and its value."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ConfigurationError(f"{name}={raw[:50]!r}: expected a positive number of seconds")
    return value


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def log_level(name: str, default: str) -> str:
    """The logging level named in the environment variable `name`, upper-cased (`default` when
    it is unset or blank), or a `ConfigurationError` naming the variable and the levels."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if raw.upper() not in LOG_LEVELS:
        raise ConfigurationError(f"{name}={raw[:50]!r}: expected one of {', '.join(LOG_LEVELS)}")
    return raw.upper()
