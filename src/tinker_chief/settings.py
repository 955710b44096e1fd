"""Settings read from the environment, with one-line errors.

A shared leaf (it imports only `errors`): `positive_seconds` reads a duration such as
`CHIEF_HUB_TIMEOUT`, `CHIEF_ENGINE_READ_TIMEOUT` or `CHIEF_ENGINE_EXPIRY_SWEEP_S`,
`log_level` a logging level such as `CHIEF_ENGINE_LOG`, and `check_hub_environment` the
variables `huggingface_hub` parses when it is imported.
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


# huggingface_hub turns these into ints with int() while it is being imported (its `constants`),
# so a typo is a ValueError from inside whichever import reaches it first. chief reads them first.
HUB_SECONDS_VARIABLES = ("HF_HUB_DOWNLOAD_TIMEOUT", "HF_HUB_ETAG_TIMEOUT")


def check_hub_environment() -> None:
    """A `ConfigurationError` naming the first of `HUB_SECONDS_VARIABLES` that is set to anything
    but a whole number of seconds (0 means huggingface_hub's default)."""
    for name in HUB_SECONDS_VARIABLES:
        raw = os.environ.get(name)
        if raw is None:
            continue
        try:
            seconds = int(raw)
        except ValueError:
            seconds = -1
        if seconds < 0:
            raise ConfigurationError(
                f"{name}={raw[:50]!r}: expected a whole number of seconds "
                "(huggingface_hub reads it; 0 or unset means its default)"
            )
