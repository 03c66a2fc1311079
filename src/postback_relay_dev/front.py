"""A Docker-free stand-in for API Gateway: routes read from template.yaml, each request turned into a real
payload-2.0 event and handed to the Lambda handler in-process, one at a time as one container would."""

from __future__ import annotations

import base64
import importlib
import json
import re
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

from postback_relay_dev.apigw import LocalContext, build_event
from postback_relay_dev.loopback import LoopbackServer
from postback_relay_dev.template import Route

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


# The query parameters that carry a secret: a tracker postback's token (GET /postback?...&token=) and a
# TrafficStars-style key. The console is often pasted into an issue or a chat; these must not go with it.
_SECRET_PARAMETER = re.compile(r"(?i)(^|[?&;])((?:token|key)=)[^&;#]*")


def redact_query(path: str) -> str:
    """``path`` (with its query string) as it may be printed: every ``token=`` and ``key=`` value is ``***``."""
    return _SECRET_PARAMETER.sub(r"\1\2***", path)


def _pattern(path: str) -> re.Pattern[str]:
    regex = re.sub(r"\\\{[^/]+?\\\+\\\}", ".+", re.escape(path))
    regex = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", regex)
    return re.compile(f"^{regex}$")


def _load(handler: str) -> Handler:
    module_name, _, function = handler.rpartition(".")
    return getattr(importlib.import_module(module_name), function)  # type: ignore[no-any-return]


class LocalApi:
    """An HTTP server on loopback that serves the template's HttpApi routes."""

    def __init__(
        self,
        routes: list[Route],
        host: str = "127.0.0.1",
        port: int = 0,
        on_response: Callable[[str, str, int, str], None] | None = None,
    ) -> None:
        """``on_response(method, path, status, body)`` is called after each answer, with the path's secrets
        (``token=``, ``key=``) redacted: it is what `make run` prints."""
        self._routes = [(route, _pattern(route.path), _load(route.handler)) for route in routes]
        self._invoke_lock = threading.Lock()
        self._on_response = on_response
        api = self

        class _RequestHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

            def _serve(self) -> None:
                api._serve(self)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _serve

        self._server = LoopbackServer(_RequestHandler, None, host, port, name="local-api")
        self.base_url = self._server.base_url

    def start(self) -> LocalApi:
        """Start serving; returns self."""
        self._server.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self._server.stop()

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted."""
        self._server.serve_forever()

    def _serve(self, request: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(request.path)
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        for route, pattern, handler in self._routes:
            if route.method in (request.command, "ANY") and pattern.match(parts.path):
                event = build_event(
                    request.command,
                    parts.path,
                    request.headers.items(),
                    body,
                    parts.query,
                    route_key=f"{route.method} {route.path}",
                    source_ip=request.client_address[0],  # the real client: allowlists can be tried locally
                )
                with self._invoke_lock:
                    result = handler(event, LocalContext(function_name=route.function))
                self._respond(request, result)
                return
        self._respond(
            request,
            {
                "statusCode": 404,
                "body": json.dumps({"message": "Not Found"}),
                "headers": {"Content-Type": "application/json"},
            },
        )

    def _respond(self, request: BaseHTTPRequestHandler, result: dict[str, Any]) -> None:
        status = int(result.get("statusCode", 200))
        raw = result.get("body") or ""
        payload = base64.b64decode(raw) if result.get("isBase64Encoded") else str(raw).encode("utf-8")
        request.send_response(status)
        for name, value in (result.get("headers") or {}).items():
            if name.lower() != "content-length":
                request.send_header(name, str(value))
        for cookie in result.get("cookies") or []:
            request.send_header("Set-Cookie", cookie)
        request.send_header("Content-Length", str(len(payload)))
        request.end_headers()
        if request.command != "HEAD":
            request.wfile.write(payload)
        if self._on_response is not None:
            # The path as it may be printed: `make run` shows every request on its console.
            body = payload.decode("utf-8", "replace")
            self._on_response(request.command, redact_query(request.path), status, body)
