"""The engine's HTTP resource limits: body sizes, zstd inflation, and read deadlines.

Every request body is capped on the wire: `MAX_FORWARD_BACKWARD_BYTES` for
`forward_backward` (the one route that carries training data), `MAX_BODY_BYTES` for every
other route. A declared `Content-Length` over the cap is refused before any byte is read, and
the bytes are counted while reading, so a chunked body cannot slip past (413 either way). A
zstd `forward_backward` body is inflated by a bounded reader to at most
`MAX_FORWARD_BACKWARD_BYTES` (never a one-shot decompress whose output size the client chooses).

Why these sizes: the SDK splits `forward_backward` into chunks of at most 5 MB of serialized
protobuf (`fwdbwd_max_chunk_bytes_count`, which this engine leaves at the SDK's default), and
only one datum larger than that goes alone; 64 MiB holds a 32k-token datum with 100 soft
targets per position. The JSON routes carry prompts and ids: a 128k-token prompt is under 1 MB
of JSON.

A slow or stalled client cannot hold a connection open: a connection must deliver a whole
request head within `read_timeout()` seconds of opening (or of its previous response), else it
is closed; a request's body must arrive within as long again after its head (408).
`CHIEF_ENGINE_READ_TIMEOUT` (seconds) changes that time.
"""

from __future__ import annotations

import asyncio
import io

import zstandard
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from tinker_chief.engine.server.http_errors import (
    InvalidRequestError,
    PayloadTooLargeError,
    RequestTimeoutError,
    error_body,
)
from tinker_chief.settings import positive_seconds

MiB = 1024 * 1024
MAX_BODY_BYTES = 8 * MiB
MAX_FORWARD_BACKWARD_BYTES = 64 * MiB  # on the wire, and again after zstd inflation
READ_TIMEOUT_S = 60.0
READ_TIMEOUT_ENV = "CHIEF_ENGINE_READ_TIMEOUT"
_FORWARD_BACKWARD_PATH = "/api/v1/forward_backward"


def read_timeout() -> float:
    """Seconds a client has for a request head, and again for its body
    (`CHIEF_ENGINE_READ_TIMEOUT`)."""
    return positive_seconds(READ_TIMEOUT_ENV, READ_TIMEOUT_S)


def body_limit(path: str) -> int:
    return MAX_FORWARD_BACKWARD_BYTES if path == _FORWARD_BACKWARD_PATH else MAX_BODY_BYTES


def _too_large(path: str, size: str) -> str:
    endpoint = path.removeprefix("/api/v1/")[:100]
    return (
        f"{endpoint}: the request body ({size}) exceeds the engine's limit of "
        f"{body_limit(path) // MiB} MiB for this endpoint"
    )


class BodyLimitMiddleware:
    """ASGI middleware: caps each request body (413) and bounds the time to receive it (408)."""

    def __init__(self, app: ASGIApp, read_timeout_s: float = READ_TIMEOUT_S) -> None:
        self.app = app
        self._timeout = read_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > body_limit(scope["path"]):
            message = _too_large(scope["path"], f"Content-Length {declared} bytes")
            await JSONResponse(error_body(message), status_code=413)(scope, receive, send)
            return
        # A body refused before its end (413, 408) is not closed on: uvicorn drops the rest as it
        # arrives (closing with unread data would reset the connection before the client reads
        # the answer), and `GuardedH11Protocol` closes the connection if it keeps trickling.
        await self.app(scope, _BoundedReceive(receive, scope["path"], self._timeout), send)


class _BoundedReceive:
    """`receive` that counts body bytes and enforces the body's deadline until the body is complete;
    after that (waiting for a disconnect) it is the plain `receive`."""

    def __init__(self, receive: Receive, path: str, timeout: float) -> None:
        self._receive, self._path, self._timeout = receive, path, timeout
        self._limit = body_limit(path)
        self._received = 0
        self._complete = False
        self._deadline = asyncio.get_running_loop().time() + timeout

    async def __call__(self) -> Message:
        if self._complete:
            return await self._receive()
        remaining = self._deadline - asyncio.get_running_loop().time()
        try:
            message = await asyncio.wait_for(self._receive(), timeout=max(remaining, 0.0))
        except TimeoutError:
            raise RequestTimeoutError(
                f"the request body did not arrive within {self._timeout:g} seconds "
                f"({self._received} bytes received); the engine closes requests that stall"
            ) from None
        if message["type"] == "http.disconnect":
            # Starlette would raise ClientDisconnect, which reaches the 500 handler with a
            # traceback.
            raise InvalidRequestError(
                "the client disconnected before sending the whole request body"
            )
        self._received += len(message.get("body", b""))
        if self._received > self._limit:
            raise PayloadTooLargeError(_too_large(self._path, f"more than {self._limit} bytes"))
        self._complete = not message.get("more_body", False)
        return message


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers") or ():
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # h11 refuses a malformed Content-Length before the app runs
    return None


def inflate_zstd(body: bytes, limit: int = MAX_FORWARD_BACKWARD_BYTES) -> bytes:
    """Decompress a zstd body to at most `limit` bytes (413 beyond), reading it in bounded steps."""
    try:
        declared = zstandard.get_frame_parameters(body).content_size
        if (
            declared not in (zstandard.CONTENTSIZE_UNKNOWN, zstandard.CONTENTSIZE_ERROR)
            and declared > limit
        ):
            raise PayloadTooLargeError(
                f"the zstd body inflates to {declared} bytes, over the engine's limit of "
                f"{limit // MiB} MiB"
            )
        reader = zstandard.ZstdDecompressor(max_window_size=limit).stream_reader(
            io.BytesIO(body), read_across_frames=True
        )
        data = reader.read(limit + 1)
    except zstandard.ZstdError as exc:
        raise InvalidRequestError(f"body is not valid zstd data ({str(exc)[:200]})") from None
    if len(data) > limit:
        raise PayloadTooLargeError(
            f"the zstd body inflates to more than the engine's limit of {limit // MiB} MiB"
        )
    if (
        declared not in (zstandard.CONTENTSIZE_UNKNOWN, zstandard.CONTENTSIZE_ERROR)
        and len(data) != declared
    ):
        raise InvalidRequestError(
            f"body is not valid zstd data (truncated: {len(data)} of {declared} bytes)"
        )
    return data


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request head.

    uvicorn arms no timer on a fresh connection, and any byte received cancels its keep-alive
    timer, so a client that sends half a request head (or keeps trickling an unread body
    after its response) would hold the connection forever. Here a connection that is waiting
    for a request head (just opened, or its last response sent) is closed when
    `read_timeout_s` passes without a complete head. Use `guarded_h11(seconds)`.
    """

    read_timeout_s: float = READ_TIMEOUT_S
    _head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm_head_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_deadline()
        super().connection_lost(exc)

    def _arm_head_deadline(self) -> None:
        self._disarm_head_deadline()
        if not self.transport.is_closing():
            self._head_deadline = self.loop.call_later(self.read_timeout_s, self._head_overdue)

    def _disarm_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_overdue(self) -> None:
        self._head_deadline = None
        waiting_for_head = self.cycle is None or self.cycle.response_complete
        if waiting_for_head and not self.transport.is_closing():
            self.transport.close()


def guarded_h11(read_timeout_s: float) -> type[GuardedH11Protocol]:
    """The protocol class to give `uvicorn.Config(http=...)`."""
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {"read_timeout_s": read_timeout_s})
