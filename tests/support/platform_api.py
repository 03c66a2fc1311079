"""The base of every emulated HTTPS endpoint the tests talk to (a platform's API, a merchant's postback script):
a LoopbackServer with a trustme certificate, whose requests are parsed once into an ApiRequest and answered by
the subclass's ``answer``. A subclass says only what the platform answers; how the bytes go out is here."""

from __future__ import annotations

import json
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import parse_qsl, urlsplit

from postback_relay_dev.loopback import LoopbackServer

if TYPE_CHECKING:
    import trustme

# What ``answer`` returns: the status, the body (bytes as they are, anything else as JSON) and extra headers
# (a Content-Type among them replaces the JSON one); None drops the connection without an answer.
Answer = tuple[int, Any, dict[str, str]] | None


@dataclass(frozen=True)
class ApiRequest:
    """One request as the endpoint received it."""

    method: str
    path: str
    query: str
    params: dict[str, list[str]]  # every value of each query parameter, in order
    headers: dict[str, str]  # lower-case names
    body: bytes

    def param(self, name: str, default: str | None = None) -> str | None:
        """The first value of query parameter ``name``."""
        values = self.params.get(name)
        return values[0] if values else default

    def json(self) -> Any:
        """The body, as JSON."""
        return json.loads(self.body or b"null")


class PlatformApi:
    """An HTTPS server on 127.0.0.1 answering each request with ``answer``; ``host_names`` are the extra names
    its certificate carries (a test that connects by name)."""

    content_type = "application/json"

    def __init__(self, authority: trustme.CA, host_names: tuple[str, ...] = ()) -> None:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                parts = urlsplit(self.path)
                params: dict[str, list[str]] = {}
                for name, value in parse_qsl(parts.query, keep_blank_values=True):
                    params.setdefault(name, []).append(value)
                request = ApiRequest(
                    method=self.command,
                    path=parts.path,
                    query=parts.query,
                    params=params,
                    headers={name.lower(): value for name, value in self.headers.items()},
                    body=self.rfile.read(length) if length else b"",
                )
                answer = api.answer(request)
                if answer is None:
                    self.close_connection = True
                    return
                status, body, headers = answer
                payload = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                if not any(name.lower() == "content-type" for name in headers):
                    self.send_header("Content-Type", api.content_type)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                try:
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client stopped waiting (a timeout test)

            do_GET = do_POST = _serve  # noqa: N815 - http.server's naming

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
                pass

        self._server = LoopbackServer(Handler, authority, name=type(self).__name__, names=host_names)
        self.port = self._server.port
        self.base_url = self._server.base_url

    def answer(self, request: ApiRequest) -> Answer:
        """What the platform answers ``request``."""
        raise NotImplementedError

    def start(self) -> Self:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()
