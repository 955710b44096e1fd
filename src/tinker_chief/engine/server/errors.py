"""HTTP-facing errors of the engine server and the body shape the SDK understands.

The backend's `InvalidRequestError` (400), `NotFoundError` (404) and `ConflictError` (409)
carry their status; this module adds `UnsupportedError` for features the local engine does
not offer. Every error body is the SDK's `RequestFailedResponse` shape
(`{"error": ..., "category": "user"|"server"}`), used both for direct HTTP errors and for
failed futures, so the SDK shows the sentence to the user in either case.
"""

from __future__ import annotations

from typing import Literal

from tinker_chief.engine.backend import ConflictError, InvalidRequestError, NotFoundError
from tinker_chief.errors import ChiefError, EngineError

__all__ = [
    "ConflictError",
    "InvalidRequestError",
    "NotFoundError",
    "UnsupportedError",
    "error_body",
    "status_of",
]

ErrorCategory = Literal["user", "server", "unknown"]


class UnsupportedError(InvalidRequestError):
    """A Tinker feature the local engine does not implement (HTTP 400, never retried)."""

    def __init__(self, feature: str) -> None:
        super().__init__(f"{feature} is not supported by the local engine (chief engine serve)")


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


def error_body(message: str, category: ErrorCategory = "user") -> dict[str, str]:
    return {"error": message, "category": category}
