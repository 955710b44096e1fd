"""Who may talk to the engine: loopback by default, an API key for anything else.

A non-loopback bind address is refused unless an API key is configured; with a key, every
request must carry it in `X-API-Key` (compared in constant time) or gets a 401. The key must
look like a Tinker key (`tml-...`) because the SDK refuses to send anything else. The key is
never logged or echoed in errors.
"""

from __future__ import annotations

import hmac
import ipaddress

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from tinker_chief.engine.server.errors import error_body
from tinker_chief.errors import ConfigurationError

LOCAL_CLIENT_KEY = "tml-local"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, api_key: str | None) -> None:
    """Refuse to expose the engine beyond this machine without an API key."""
    if api_key is not None and not api_key.startswith("tml-"):
        raise ConfigurationError("--api-key / CHIEF_ENGINE_API_KEY must start with 'tml-' "
                                 "(the tinker SDK only sends keys of that form)")
    if api_key is not None and len(api_key) < 8:
        raise ConfigurationError("--api-key / CHIEF_ENGINE_API_KEY is too short (use at least 8 characters)")
    if not is_loopback(host) and not api_key:
        raise ConfigurationError(
            f"refusing to listen on non-loopback address {host!r} without an API key: set --api-key "
            "or CHIEF_ENGINE_API_KEY (clients must then send it as their tinker api_key)")


class ApiKeyMiddleware:
    """ASGI middleware: 401 unless the request's X-API-Key equals the configured key."""

    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app = app
        self._expected = api_key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = dict(scope.get("headers") or []).get(b"x-api-key", b"")
        if not hmac.compare_digest(sent, self._expected):
            response = JSONResponse(error_body("missing or wrong X-API-Key for this engine"), status_code=401)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
