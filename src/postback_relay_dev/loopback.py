"""One HTTP(S) server on loopback, served from a daemon thread: what the local run's TrafficStars sandbox and
API front stand on, and every emulated platform API and merchant endpoint of the tests.

Written once because each of them needs the same four things done the same way: a threading server whose
request threads never keep the process alive, a certificate from the caller's authority (trustme in the tests,
the local run's own authority for `make run`) naming the host and every loopback name, the port the kernel
chose, and a stop that also closes the socket. A client that hangs up mid-answer is expected (a timeout test
does it on purpose), so it is not printed as a server error."""

from __future__ import annotations

import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import trustme

LOOPBACK_NAMES = ("127.0.0.1", "::1", "localhost")


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that stopped waiting is expected, not a failure to print


class LoopbackServer:
    """``handler`` served on ``host``:``port`` (0: any free port), over HTTPS when ``authority`` is given, with a
    certificate for ``host``, the loopback names and ``names`` (host names a test resolves to loopback)."""

    def __init__(
        self,
        handler: type[BaseHTTPRequestHandler],
        authority: trustme.CA | None,
        host: str = "127.0.0.1",
        port: int = 0,
        name: str = "loopback-server",
        names: tuple[str, ...] = (),
    ) -> None:
        self.server: ThreadingHTTPServer = _QuietServer((host, port), handler)
        if authority is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            authority.issue_cert(*dict.fromkeys((host, *LOOPBACK_NAMES, *names))).configure_cert(context)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.host = host
        self.port: int = self.server.server_address[1]
        self.base_url = f"{'https' if authority is not None else 'http'}://{host}:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, name=name, daemon=True)

    def start(self) -> LoopbackServer:
        """Start serving in the background; returns self."""
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted (`make run`'s front)."""
        self.server.serve_forever()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.server.shutdown()
        self.server.server_close()
