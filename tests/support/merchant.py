"""A merchant's own endpoint on loopback, over HTTPS (a certificate of the tests' authority): what forward mode
passes requests on to. It records every request exactly as received and answers as a test tells it to: a status,
a content type and a body, after a delay, or a redirect."""

from __future__ import annotations

import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import trustme

NAMES = ("127.0.0.1", "localhost", "members.merchant.test")


@dataclass(frozen=True)
class MerchantRequest:
    """One request the merchant received: method, path with query, headers (lower-case names), body."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    @property
    def query(self) -> str:
        return self.target.split("?", 1)[1] if "?" in self.target else ""


@dataclass
class MerchantBehaviour:
    """How the merchant answers the next requests."""

    status: int = 200
    content_type: str = "text/plain"
    body: bytes = b"OK"
    delay_seconds: float = 0.0
    location: str | None = None  # a redirect's target
    drop: bool = False  # close the connection without an answer (a merchant that is down)
    received: list[MerchantRequest] = field(default_factory=list)

    def reset(self) -> None:
        self.__init__()  # type: ignore[misc]


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that stopped waiting (the timeout test) is expected, not a failure to print


class MerchantEndpoint:
    """An HTTPS server on 127.0.0.1 whose behaviour a test sets (``behaviour``) and whose requests it reads."""

    def __init__(self, authority: trustme.CA) -> None:
        self.behaviour = MerchantBehaviour()
        behaviour = self.behaviour

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {name.lower(): value for name, value in self.headers.items()}
                behaviour.received.append(MerchantRequest(self.command, self.path, headers, body))
                if behaviour.drop:
                    self.close_connection = True
                    return
                if behaviour.delay_seconds:
                    time.sleep(behaviour.delay_seconds)
                self.send_response(behaviour.status)
                if behaviour.location:
                    self.send_header("Location", behaviour.location)
                self.send_header("Content-Type", behaviour.content_type)
                self.send_header("Content-Length", str(len(behaviour.body)))
                self.end_headers()
                try:
                    self.wfile.write(behaviour.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the relay stopped waiting (a timeout test)

            do_GET = _serve  # noqa: N815 - http.server's naming
            do_POST = _serve  # noqa: N815

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
                pass

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        authority.issue_cert(*NAMES).configure_cert(context)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, path: str = "/postbacks/verotel.php", host: str = "127.0.0.1") -> str:
        return f"https://{host}:{self.port}{path}"

    def start(self) -> MerchantEndpoint:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
