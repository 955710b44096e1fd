"""HTTP-facing errors of the engine server and the body shape the SDK understands.

The backend's `InvalidRequestError` (400), `NotFoundError` (404) and `ConflictError` (409)
carry their status; this module adds `UnsupportedError` for features the local engine does
not offer, and the statuses of the engine's resource limits (`limits.py`, `futures.py`): 408,
410, 413. Every error body is the SDK's `RequestFailedResponse` shape
(`{"error": ..., "category": "user"|"server"}`), used both for direct HTTP errors and for
failed futures, so the SDK shows the sentence to the user in either case. Errors never echo
unbounded input: `shown()` quotes a client's value cut to `MAX_SHOWN_CHARS`, and
`error_body` cuts any message to `MAX_ERROR_CHARS`.
"""

from __future__ import annotations

from typing import Literal

from tinker_chief.engine.backend import ConflictError, InvalidRequestError, NotFoundError
from tinker_chief.errors import ChiefError, EngineError

__all__ = [
    "ConflictError",
    "GoneError",
    "InvalidRequestError",
    "NotFoundError",
    "PayloadTooLargeError",
    "RequestTimeoutError",
    "UnsupportedError",
    "error_body",
    "shown",
    "status_of",
]

ErrorCategory = Literal["user", "server", "unknown"]
MAX_SHOWN_CHARS = 200  # of one client-supplied value quoted in an error
MAX_ERROR_CHARS = (
    2000  # of a whole error message (a backstop: a listing can be long, never unbounded)
)


class UnsupportedError(InvalidRequestError):
    """A Tinker feature the local engine does not implement (HTTP 400, never retried)."""

    def __init__(self, feature: str) -> None:
        super().__init__(f"{feature} is not supported by the local engine (chief engine serve)")


class PayloadTooLargeError(InvalidRequestError):
    """A request body over the engine's size limits (HTTP 413, never retried)."""

    status_code = 413


class RequestTimeoutError(InvalidRequestError):
    """A request body that did not arrive in time (HTTP 408)."""

    status_code = 408


class GoneError(InvalidRequestError):
    """A result that existed but expired before anyone retrieved it (HTTP 410)."""

    status_code = 410


class UnauthorizedError(EngineError):
    """Missing or wrong X-API-Key (HTTP 401)."""

    status_code = 401


def status_of(exc: BaseException) -> int:
    """The HTTP status for an exception: its `status_code`, else 404/400 for the catalog's
    lookup/value errors (unknown model, bad config), else 500."""
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        return status
    if isinstance(exc, ChiefError) and isinstance(exc, LookupError):
        return 404
    if isinstance(exc, ChiefError) and isinstance(exc, ValueError):
        return 400
    return 500


def shown(value: object, limit: int = MAX_SHOWN_CHARS) -> str:
    """`repr(value)` for an error message, cut to `limit` characters with the full length said."""
    try:
        text = repr(value)
    except ValueError:  # an int past Python's 4300-digit str() limit
        if not isinstance(value, int):
            raise
        return f"an integer of about {int(value.bit_length() * 0.30103)} digits"
    if len(text) <= limit:
        return text
    length = f" ({len(value)} characters)" if isinstance(value, (str, bytes)) else ""
    return f"{text[:limit]}...{length}"


def error_body(message: str, category: ErrorCategory = "user") -> dict[str, str]:
    if len(message) > MAX_ERROR_CHARS:
        message = message[:MAX_ERROR_CHARS] + f"... (message cut at {MAX_ERROR_CHARS} characters)"
    return {"error": message, "category": category}
