"""moto server on loopback with requests applied one at a time, as DynamoDB applies writes to an item
atomically: without this, two concurrent conditional writes to moto's in-memory tables could both win."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable, Iterable
from typing import Any

import requests
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class SerializedMotoServer:
    """moto's WSGI app behind a lock, in a background thread; ``fault`` may fail chosen requests."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._app = DomainDispatcherApplication(create_backend_app)
        self._lock = threading.Lock()
        self.fault: Callable[[dict[str, Any]], bool] | None = None
        # Chosen requests are applied and then answered 500, as when an answer is lost on the way back.
        self.lose_answer: Callable[[dict[str, Any]], bool] | None = None
        self.calls: list[str] = []
        # (target, the resource the request names: its QueueUrl, TableName[/index/IndexName] or SecretId)
        self.requests: list[tuple[str, str]] = []
        self._server: BaseWSGIServer = make_server(host, port, self._wsgi, threaded=True)
        self.endpoint = f"http://{host}:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="moto-server", daemon=True)

    def _wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        body = b""
        if target:
            # The body is read once and put back, so a fault can depend on it (``environ["moto.body"]``).
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length) if length else b""
            environ["wsgi.input"], environ["moto.body"] = io.BytesIO(body), body
        if self.fault is not None and target and self.fault(environ):
            body = b'{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"injected fault"}'
            start_response(
                "500 Internal Server Error",
                [("Content-Type", "application/x-amz-json-1.0"), ("Content-Length", str(len(body)))],
            )
            return [body]
        if self.lose_answer is not None and target and self.lose_answer(environ):
            with self._lock:  # applied, then answered 500 as if the answer never arrived: the client retries
                self.calls.append(target)
                self.requests.append((target, _resource(body)))
                b"".join(self._app(environ, lambda *args, **kwargs: None))
            body = b'{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"answer lost"}'
            start_response(
                "500 Internal Server Error",
                [("Content-Type", "application/x-amz-json-1.0"), ("Content-Length", str(len(body)))],
            )
            return [body]
        with self._lock:
            if target:
                self.calls.append(target)
                self.requests.append((target, _resource(body)))
            return [b"".join(self._app(environ, start_response))]

    def start(self) -> SerializedMotoServer:
        """Start serving; returns self."""
        self._thread.start()
        return self

    def reset(self) -> None:
        """Drop every resource moto holds (between tests)."""
        requests.post(f"{self.endpoint}/moto-api/reset", timeout=10).raise_for_status()
        self.calls.clear()
        self.requests.clear()
        self.fault = None
        self.lose_answer = None

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()


def _resource(body: bytes) -> str:
    """The resource a JSON-protocol request names, for tests that pin each function's permissions."""
    try:
        request = json.loads(body or b"{}")
    except ValueError:
        return ""
    if not isinstance(request, dict):
        return ""
    if "QueueUrl" in request:
        return str(request["QueueUrl"]).rsplit("/", 1)[-1]
    if "TableName" in request:
        index = request.get("IndexName")
        return f"{request['TableName']}/index/{index}" if index else str(request["TableName"])
    if isinstance(request.get("RequestItems"), dict) and len(request["RequestItems"]) == 1:  # Batch*Item
        return str(next(iter(request["RequestItems"])))
    return str(request.get("SecretId", ""))
