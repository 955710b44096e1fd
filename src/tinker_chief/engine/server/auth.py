"""Who may talk to the engine: loopback by default, an API key for anything else.

A non-loopback bind address is refused unless an API key is configured; with a key, every
request must carry it in `X-API-Key` (compared in constant time) or gets a 401. The key must
look like a Tinker key (`tml-...`) because the SDK refuses to send anything else; for a
non-loopback bind it must also be hard to guess (`check_key_strength`). Wrong keys are rate
limited per client address (`AuthFailureLimiter`): after a burst of 401s the address gets 429
for every request, key checked or not, until its budget refills. The client address is the
peer of the connection: `X-Forwarded-For` counts only from the proxies named with
`--forwarded-allow-ips` (serve.py), so no client picks its own address. The key is never logged
or echoed in errors.

A keyed engine also answers `POST /api/v1/engine_proof {"nonce": ...}` without a key: an HMAC
of the nonce under its key (`engine_proof`). A chief process that found an engine's key in a
key file (launcher.py) asks for one before it sends the key anywhere, so a server that is not
that engine never receives it; the answer reveals nothing that helps guess the key.

Web pages are refused whatever the key (`BrowserGuardMiddleware`): a request whose `Host` is
not an address of this engine (a DNS-rebinding page) or that carries a browser's `Origin` or
`Sec-Fetch-Site: cross-site|same-site` header gets a 403. API clients (the tinker SDK, httpx,
curl) send none of these, so they are unaffected.
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import ipaddress
import math
import time
from collections.abc import Callable

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from tinker_chief.engine.server.http_errors import error_body, shown
from tinker_chief.errors import ConfigurationError

LOCAL_CLIENT_KEY = "tml-local"
_WILDCARD_HOSTS = ("0.0.0.0", "::")
# Sec-Fetch-Site values of a request made by another page.
_BROWSER_SITES = (
    b"cross-site",
    b"same-site",
)
MIN_REMOTE_KEY_CHARS = 32  # after "tml-": what `secrets.token_urlsafe(24)` gives (192 random bits)
MIN_REMOTE_KEY_DISTINCT = 12  # different characters: refuses "tml-aaaa...", "tml-12341234..."
KEY_HINT = "python -c \"import secrets; print('tml-' + secrets.token_urlsafe(32))\""
AUTH_FAILURE_BURST = 10  # wrong-key requests a client address may make in a row ...
AUTH_FAILURE_REFILL_S = 6.0  # ... then one more per this many seconds (10 a minute)
PROOF_PATH = "/api/v1/engine_proof"
PROOF_NONCE_HEX_CHARS = 64  # a nonce of 32 random bytes, hex-encoded
_PROOF_CONTEXT = b"chief engine proof of key\0"  # this HMAC means nothing anywhere else


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
        raise ConfigurationError(
            "--api-key / CHIEF_ENGINE_API_KEY must start with 'tml-' (the tinker SDK only sends "
            "keys of that form)"
        )
    if api_key is not None and len(api_key) < 8:
        raise ConfigurationError(
            "--api-key / CHIEF_ENGINE_API_KEY is too short (use at least 8 characters)"
        )
    if not is_loopback(host) and not api_key:
        raise ConfigurationError(
            f"refusing to listen on non-loopback address {host!r} without an API key: set "
            "--api-key or CHIEF_ENGINE_API_KEY (clients must then send it as their tinker api_key)"
        )
    if not is_loopback(host) and api_key:
        check_key_strength(host, api_key)


def check_key_strength(host: str, api_key: str) -> None:
    """A key that guards a non-loopback address must resist guessing (the message never shows
    it)."""
    secret = api_key.removeprefix("tml-")
    if len(secret) < MIN_REMOTE_KEY_CHARS or len(set(secret)) < MIN_REMOTE_KEY_DISTINCT:
        raise ConfigurationError(
            f"the API key is too weak to expose the engine on {host!r}: after 'tml-' it needs at "
            f"least {MIN_REMOTE_KEY_CHARS} characters with at least {MIN_REMOTE_KEY_DISTINCT} "
            f"different ones (it has {len(secret)} with {len(set(secret))} different); generate "
            f"one with {KEY_HINT}"
        )


def engine_proof(api_key: str, nonce: str) -> str:
    """What the engine holding `api_key` answers to `nonce` (hex HMAC-SHA256 under the key)."""
    return hmac.new(api_key.encode(), _PROOF_CONTEXT + nonce.encode(), hashlib.sha256).hexdigest()


def is_proof_nonce(nonce: str) -> bool:
    return len(nonce) == PROOF_NONCE_HEX_CHARS and all(c in "0123456789abcdef" for c in nonce)


class ApiKeyMiddleware:
    """ASGI middleware: 401 unless the request's X-API-Key equals the configured key.

    Paths under `open_prefix` pass without a key: their route checks a credential of its own
    (the signed download URLs of `downloads.py`, fetched by clients that send no key); so does
    the key proof (`PROOF_PATH`), which a client asks for before it sends any key."""

    def __init__(
        self,
        app: ASGIApp,
        api_key: str,
        open_prefix: str | None = None,
        limiter: AuthFailureLimiter | None = None,
    ) -> None:
        self.app = app
        self._expected = api_key.encode()
        self._open_prefix = open_prefix
        self._limiter = limiter or AuthFailureLimiter()

    def _is_open(self, path: str) -> bool:
        if path == PROOF_PATH:
            return True
        return self._open_prefix is not None and path.startswith(self._open_prefix)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if not self._is_open(scope["path"]):
            client = (scope.get("client") or ("unknown", 0))[0]
            wait_s = self._limiter.wait_s(client)
            # Before comparing: a locked-out address learns nothing about its guesses.
            if wait_s > 0:
                message = (
                    f"too many requests with a wrong X-API-Key from {client}; "
                    f"retry in {math.ceil(wait_s)} seconds"
                )
                await JSONResponse(
                    error_body(message),
                    status_code=429,
                    headers={"Retry-After": str(math.ceil(wait_s))},
                )(scope, receive, send)
                return
            sent = dict(scope.get("headers") or []).get(b"x-api-key", b"")
            if not hmac.compare_digest(sent, self._expected):
                self._limiter.spend(client)
                response = JSONResponse(
                    error_body("missing or wrong X-API-Key for this engine"), status_code=401
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class AuthFailureLimiter:
    """A token bucket per client address, spent by each 401: `burst` in a row, then one per
    `refill_s`.

    The table is bounded: past `max_clients` addresses, those whose bucket is full again (the
    same as never seen) are forgotten, then the oldest. Runs on the event loop only (no lock).
    """

    def __init__(
        self,
        burst: int = AUTH_FAILURE_BURST,
        refill_s: float = AUTH_FAILURE_REFILL_S,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = 10_000,
    ) -> None:
        self._burst, self._refill_s, self._clock, self._max = burst, refill_s, clock, max_clients
        self._buckets: collections.OrderedDict[str, tuple[float, float]] = collections.OrderedDict()

    def wait_s(self, client: str) -> float:
        """Seconds until `client` may try a key again (0: now)."""
        missing = 1.0 - self._level(client)
        return max(missing, 0.0) * self._refill_s

    def spend(self, client: str) -> None:
        self._buckets[client] = (self._level(client) - 1.0, self._clock())
        self._buckets.move_to_end(client)
        if len(self._buckets) > self._max:
            for full in [c for c in self._buckets if self._level(c) >= self._burst]:
                del self._buckets[full]
            while len(self._buckets) > self._max:
                self._buckets.popitem(last=False)

    def _level(self, client: str) -> float:
        if client not in self._buckets:
            return float(self._burst)
        tokens, stamp = self._buckets[client]
        return min(float(self._burst), tokens + (self._clock() - stamp) / self._refill_s)


def host_name(header: str) -> str:
    """The host part of a `Host` header: `[::1]:8765` -> `::1`, `Localhost:80` -> `localhost`."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class BrowserGuardMiddleware:
    """ASGI middleware: 403 for requests a web page made (see the module docstring).

    `Host` must name this engine: a loopback name or address, or the bind address itself; an
    engine bound to every interface (0.0.0.0) accepts any `Host`, as it requires an API key.
    """

    def __init__(self, app: ASGIApp, bind_host: str) -> None:
        self.app = app
        bind = bind_host.strip("[]").lower()
        self._any_host = bind in _WILDCARD_HOSTS
        self._bind = bind

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problem = self._problem(dict(scope.get("headers") or []))
        if problem is not None:
            await JSONResponse(error_body(problem), status_code=403)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _problem(self, headers: dict[bytes, bytes]) -> str | None:
        if b"origin" in headers or headers.get(b"sec-fetch-site", b"").lower() in _BROWSER_SITES:
            return (
                "refused: this request came from a web page (it has a browser Origin or "
                "Sec-Fetch-Site header); the engine serves API clients such as the tinker SDK only"
            )
        host = host_name(headers.get(b"host", b"").decode("latin-1"))
        if host and not self._any_host and host != self._bind and not is_loopback(host):
            return (
                f"refused: the Host header names {shown(host, 100)}, not this engine's address "
                f"({self._bind}); connect to the engine by its address (this blocks DNS rebinding)"
            )
        return None
