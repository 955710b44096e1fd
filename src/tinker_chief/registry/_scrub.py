"""Removing secrets from everything the registry writes (configs, settings, reasons, details).

Two rules, applied recursively to dicts, lists and strings before any row is written:
a key that names a credential (`api_key`, `token`, `secret`, `password`, `authorization`, ...)
has its value replaced; and any string, a dict's keys included, has substrings that look like
keys replaced
(`tml-...` Tinker keys, `sk-...`, `hf_...`, `ghp_...`, `AKIA...`, JWTs `eyJ...`, bearer tokens).
Counts such as `tokens` or `max_tokens` are not credentials and are kept.
"""

from __future__ import annotations

import re
from typing import overload

REDACTED = "[REDACTED]"

# A credential key: the whole key, or its last `_`/`-`/`.`-separated part(s), names a secret.
_SECRET_KEY = re.compile(
    r"(?:^|[_\-.])(?:api[_\-]?key|apikey|access[_\-]?key|private[_\-]?key|secret(?:[_\-]?key)?"
    r"|token|access[_\-]?token|refresh[_\-]?token|auth[_\-]?token|password|passwd|passphrase"
    r"|authorization|auth|credentials?|cookie|bearer)$",
    re.IGNORECASE,
)

_SECRET_VALUE = re.compile(
    r"|".join(
        [
            r"\btml-[A-Za-z0-9_\-]{8,}",  # Tinker API keys
            r"\bsk-[A-Za-z0-9_\-]{16,}",  # OpenAI/Anthropic-style keys
            r"\bhf_[A-Za-z0-9]{16,}",  # Hugging Face tokens
            r"\bgh[pousr]_[A-Za-z0-9]{20,}",  # GitHub tokens
            r"\bAKIA[0-9A-Z]{16}\b",  # AWS access key ids
            r"\beyJ[A-Za-z0-9_\-]{10,}(?:\.[A-Za-z0-9_\-]+){0,2}",  # JWTs
            r"(?i:\bbearer\s+)[A-Za-z0-9._~+/=\-]{16,}",  # Authorization: Bearer <token>
        ]
    )
)


def is_secret_key(key: str) -> bool:
    return bool(_SECRET_KEY.search(key))


def scrub_text(text: str) -> str:
    """Replace key-looking substrings of `text`."""
    return _SECRET_VALUE.sub(REDACTED, text)


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
