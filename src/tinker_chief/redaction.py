"""What a key looks like, and text with every one replaced.

A shared leaf because two layers need the same rule: the registry scrubs everything it writes
(`registry/_scrub.py` adds credential-named fields and nested values), and `errors.ChiefError`
scrubs its own message and reasons, so an error that quotes a value the user gave (a key pasted
as a project name) never carries the key to a log, a traceback or a library caller.
"""

from __future__ import annotations

import re

REDACTED = "[REDACTED]"

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


def scrub_text(text: str) -> str:
    """`text` with its key-looking substrings replaced by `REDACTED`."""
    return _SECRET_VALUE.sub(REDACTED, text)
