"""Removing secrets from everything the registry writes (configs, settings, reasons, details).

Two rules, applied recursively to dicts, lists and strings before any row is written:
a key that names a credential (`api_key`, `token`, `secret`, `password`, `authorization`, ...)
has its value replaced; and any string, a dict's keys included, has substrings that look like
keys replaced
(`tml-...` Tinker keys, `sk-...`, `hf_...`, `ghp_...`, `AKIA...`, JWTs `eyJ...`, bearer tokens).
Counts such as `tokens` or `max_tokens` are not credentials and are kept. The second rule is
the shared leaf `redaction.py`, which errors use too.
"""

from __future__ import annotations

import re
from typing import overload

from tinker_chief.redaction import REDACTED, scrub_text

__all__ = ["REDACTED", "is_secret_key", "scrub", "scrub_optional", "scrub_text"]

# A credential key: the whole key, or its last `_`/`-`/`.`-separated part(s), names a secret.
_SECRET_KEY = re.compile(
    r"(?:^|[_\-.])(?:api[_\-]?key|apikey|access[_\-]?key|private[_\-]?key|secret(?:[_\-]?key)?"
    r"|token|access[_\-]?token|refresh[_\-]?token|auth[_\-]?token|password|passwd|passphrase"
    r"|authorization|auth|credentials?|cookie|bearer)$",
    re.IGNORECASE,
)


def is_secret_key(key: str) -> bool:
    return bool(_SECRET_KEY.search(key))


@overload
def scrub(value: str) -> str: ...
@overload
def scrub(value: object) -> object: ...


def scrub(value: object) -> object:
    """A copy of `value` (JSON-like) with credential keys and key-looking strings redacted, the
    keys themselves included (a metric name in `[gate]` tolerances is the user's text too)."""
    if isinstance(value, dict):
        return {
            scrub_text(str(k)): (
                REDACTED if is_secret_key(str(k)) and value[k] not in (None, "") else scrub(v)
            )
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [scrub(item) for item in value]
    if isinstance(value, str):
        return scrub_text(value)
    return value


def scrub_optional(text: str | None) -> str | None:
    return None if text is None else scrub_text(text)
