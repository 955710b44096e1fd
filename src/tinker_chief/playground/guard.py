"""The playground's door: only this machine's browser, holding the printed token, gets in.

An ASGI middleware in front of every route. A request passes only when
- its `Host` header names this server (127.0.0.1, localhost or [::1] at its port), which stops
  DNS rebinding: a foreign page whose host name resolves to 127.0.0.1 still sends its own name;
- its `Origin`, when a browser sends one, is this server, so no other page can post to it;
- it carries the token: `?token=` in the URL (the printed link; the answer then sets an
  HttpOnly, SameSite=Strict cookie, as Jupyter does), that cookie, or `Authorization: token T`;
- its body is at most `max_body` bytes (checked on the declared length and while reading).
A refused request gets a one-line JSON `{"error": ...}` (plain text for pages), never a traceback.
"""

from __future__ import annotations

import hmac
import json
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


class BodyTooLarge(Exception):
    """Raised into the app when a streamed body passes the cap (the app answers 413)."""


def refusal(
    status: int, message: str, *, api: bool
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Status, headers and body of a refused request: JSON for the API, text for pages."""
    if api:
        body = json.dumps({"error": message}).encode()
        kind = b"application/json"
    else:
        body = f"chief playground: {message}\n".encode()
        kind = b"text/plain; charset=utf-8"
    return status, [(b"content-type", kind), (b"content-length", str(len(body)).encode())], body


class Guard:
    """Wraps `app`; see the module docstring for what passes."""

    def __init__(self, app: ASGIApp, *, token: str, port: int, max_body: int) -> None:
        self.app = app
        self.token = token
        self.port = port
        self.max_body = max_body
        self.hosts = {f"{name}:{port}" for name in LOOPBACK_NAMES}
        self.origins = {f"http://{host}" for host in self.hosts}
        self.cookie = f"chief-playground-{port}"  # cookies ignore ports: one name per server

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {
            k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])
        }
        api = str(scope.get("path", "")).startswith("/api/")
        problem = self._check(scope, headers)
        if problem is not None:
            await _answer(send, *refusal(problem[0], problem[1], api=api))
            return
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body:
            await _answer(send, *refusal(413, self._too_large(), api=api))
            return
        from_query = self._query_token(scope) is not None
        await self.app(
            scope, self._capped(receive), self._with_cookie(send) if from_query else send
        )

    def _check(self, scope: Scope, headers: dict[str, str]) -> tuple[int, str] | None:
        host = headers.get("host", "")
        if host not in self.hosts:
            return 403, (
                f"refused: the Host header {host!r} is not this playground "
                f"(127.0.0.1:{self.port}); open the URL `chief playground` printed"
            )
        origin = headers.get("origin")
        if origin is not None and origin not in self.origins:
            return 403, (
                f"refused: a cross-origin request from {origin!r}; "
                "only this playground's own page may call it"
            )
        if not self._has_token(scope, headers):
            return 403, (
                "refused: no valid token; open the URL `chief playground` printed "
                "(it ends in ?token=...) or send the header `Authorization: token <token>`"
            )
        return None

    def _too_large(self) -> str:
        limit = f"{self.max_body // 1024} KiB"
        return f"request body too large: the playground takes at most {limit} per request"

    def _query_token(self, scope: Scope) -> str | None:
        values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
        return values[0] if values and self._matches(values[0]) else None

    def _has_token(self, scope: Scope, headers: dict[str, str]) -> bool:
        if self._query_token(scope) is not None:
            return True
        authorization = headers.get("authorization", "")
        if authorization.lower().startswith("token ") and self._matches(authorization[6:].strip()):
            return True
        for part in headers.get("cookie", "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == self.cookie and self._matches(value):
                return True
        return False

    def _matches(self, candidate: str) -> bool:
        return hmac.compare_digest(candidate.encode(), self.token.encode())

    def _capped(self, receive: Receive) -> Receive:
        seen = 0

        async def capped() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_body:
                raise BodyTooLarge(self._too_large())
            return message

        return capped

    def _with_cookie(self, send: Send) -> Send:
        cookie = f"{self.cookie}={self.token}; HttpOnly; SameSite=Strict; Path=/".encode()

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"set-cookie", cookie)]
            await send(message)

        return sending


async def _answer(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
