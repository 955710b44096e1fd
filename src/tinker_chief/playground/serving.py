"""Serving the playground: a socket on 127.0.0.1 only, a fresh token, uvicorn.

The socket is bound and listening before the URL is handed out, so a browser opened at once
waits in the backlog rather than being refused. The token is `secrets.token_urlsafe`, new each
start. `run()` blocks until Ctrl-C (or `stop()` from another thread, as the tests do).
"""

from __future__ import annotations

import secrets
import socket

from tinker_chief.errors import ConfigurationError
from tinker_chief.playground.web import PlaygroundState, make_app

HOST = "127.0.0.1"


class PlaygroundServer:
    """The playground for `state` on 127.0.0.1:`port` (0: a free port the system picks)."""

    def __init__(self, state: PlaygroundState, port: int = 0) -> None:
        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind((HOST, port))
            self.sock.listen(64)
        except OSError as exc:
            self.sock.close()
            raise ConfigurationError(
                f"--port {port}: cannot listen on {HOST}:{port} ({exc.strerror or exc})"
            ) from None
        self.port = int(self.sock.getsockname()[1])
        self.token = secrets.token_urlsafe(24)
        app = make_app(state, token=self.token, port=self.port)
        # asyncio and h11 even where uvloop/httptools are installed (trackio pulls them in):
        # the same server on every install, the one the tests exercise.
        config = uvicorn.Config(
            app, log_level="warning", lifespan="off", access_log=False, loop="asyncio", http="h11"
        )
        self._server = uvicorn.Server(config)

    @property
    def url(self) -> str:
        """The link to open: the page with its token, as Jupyter prints it."""
        return f"http://{HOST}:{self.port}/?token={self.token}"

    def run(self) -> None:
        try:
            self._server.run(sockets=[self.sock])
        finally:
            self.sock.close()

    def stop(self) -> None:
        self._server.should_exit = True
