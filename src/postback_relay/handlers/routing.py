"""HTTP API (payload format 2.0) routing for the Lambda handler: the part of powertools'
APIGatewayHttpResolver that the relay uses, answering as it does (tests/unit/test_routing.py holds the two side
by side), without its cost. Importing the resolver loads every powertools resolver, AppSync, asyncio, OpenAPI
and some forty event data classes: about 24 ms of a cold start whose floor (boto3 + requests) is ~140 ms.
Each request then runs its middleware stack: about 0.1 ms of a ~1 ms webhook."""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, Generic, TypeVar

APPLICATION_JSON = "application/json"
NOT_FOUND_BODY = {"statusCode": 404, "message": "Not found"}
_PARAMETER = re.compile(r"(<\w+>)")
_PARAMETER_VALUE = r"(?P\1[-._~()'!*:@,;=+&$%<> \[\]{}|^\\w]+)"  # the characters powertools allows in one

T = TypeVar("T")
Route = Callable[..., Any]
ExceptionHandler = Callable[[Any], "Response[Any]"]


class Response(Generic[T]):
    """A route's answer. A body that is not ``str`` is JSON-encoded when the content type is JSON; ``bytes``
    are base64-encoded."""

    def __init__(
        self,
        status_code: int,
        content_type: str | None = None,
        body: T | None = None,
        headers: Mapping[str, str | list[str]] | None = None,
    ) -> None:
        self.status_code = status_code
        self.body = body
        self.headers: dict[str, str | list[str]] = dict(headers or {})
        if content_type:
            self.headers.setdefault("Content-Type", content_type)


class Headers(dict[str, str]):
    """Request headers. API Gateway lower-cases their names; lookups by any case work, as in powertools."""

    def __init__(self, raw: Mapping[str, str] | None) -> None:
        super().__init__((name.lower(), value) for name, value in (raw or {}).items())

    def __getitem__(self, name: str) -> str:
        return super().__getitem__(name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and super().__contains__(name.lower())

    def get(self, name: str, default: Any = None) -> Any:
        """The header's value, whatever the case of ``name``."""
        return super().get(name.lower(), default)


class HttpEvent:
    """The request, read from the event (the properties of powertools' APIGatewayProxyEventV2 used here)."""

    def __init__(self, event: Mapping[str, Any]) -> None:
        self.raw_event = event
        self.headers = Headers(event.get("headers"))

    @property
    def body(self) -> str | None:
        """The body as API Gateway passed it (base64 when ``is_base64_encoded``)."""
        body: str | None = self.raw_event.get("body")
        return body

    @property
    def is_base64_encoded(self) -> bool:
        """Whether API Gateway base64-encoded the body."""
        return bool(self.raw_event.get("isBase64Encoded"))

    @property
    def raw_query_string(self) -> str:
        """The query string exactly as sent (repeated and empty parameters kept)."""
        return str(self.raw_event.get("rawQueryString") or "")

    @property
    def http_method(self) -> str:
        """GET, POST, …"""
        return str(self.raw_event["requestContext"]["http"]["method"])

    @property
    def source_ip(self) -> str:
        """The address API Gateway received the request from (never X-Forwarded-For, which anyone writes)."""
        return str(self.raw_event.get("requestContext", {}).get("http", {}).get("sourceIp") or "")

    @property
    def path(self) -> str:
        """The path, without the stage when the stage is not ``$default``."""
        raw = str(self.raw_event.get("rawPath", ""))
        stage = self.raw_event.get("requestContext", {}).get("stage", "$default")
        return raw[len("/" + stage) :] if stage != "$default" else raw


class Router:
    """Routes by method and path (``/webhooks/<source_name>``), maps exceptions to answers with the handlers
    registered for them, and builds the payload-2.0 response. Unhandled exceptions propagate."""

    def __init__(self) -> None:
        self._static: list[tuple[str, re.Pattern[str], Route]] = []
        self._dynamic: list[tuple[str, re.Pattern[str], Route]] = []
        self._exception_handlers: dict[type[BaseException], ExceptionHandler] = {}
        self.current_event: HttpEvent = HttpEvent({})
        self.context: dict[str, Any] = {}

    def append_context(self, **values: Any) -> None:
        """Values a route shares with the exception handlers of the same request (cleared after it)."""
        self.context.update(values)

    def route(self, rule: str, method: str) -> Callable[[Route], Route]:
        """Register a function for ``method rule``; ``<name>`` in the rule is passed as keyword ``name``."""

        def register(function: Route) -> Route:
            pattern = re.compile(f"^{_PARAMETER.sub(_PARAMETER_VALUE, rule)}$")
            (self._dynamic if _PARAMETER.search(rule) else self._static).append((method.upper(), pattern, function))
            return function

        return register

    def get(self, rule: str) -> Callable[[Route], Route]:
        """Register a GET route."""
        return self.route(rule, "GET")

    def post(self, rule: str) -> Callable[[Route], Route]:
        """Register a POST route."""
        return self.route(rule, "POST")

    def exception_handler(
        self, exception: type[BaseException] | list[type[BaseException]]
    ) -> Callable[[ExceptionHandler], ExceptionHandler]:
        """Register the answer to an exception (and its subclasses) raised by a route."""

        def register(handler: ExceptionHandler) -> ExceptionHandler:
            for kind in exception if isinstance(exception, list) else [exception]:
                self._exception_handlers[kind] = handler
            return handler

        return register

    def resolve(self, event: Mapping[str, Any], context: Any) -> dict[str, Any]:
        """Answer one event."""
        self.current_event = request = HttpEvent(event)
        try:
            return self._resolve(request)
        finally:
            self.context.clear()

    def _resolve(self, request: HttpEvent) -> dict[str, Any]:
        method, path = request.http_method.upper(), request.path
        for route_method, pattern, function in self._static + self._dynamic:
            if route_method != method:
                continue
            match = pattern.match(path)
            if match:
                try:
                    result = function(**match.groupdict())
                except Exception as exc:
                    handler = self._handler_for(exc)
                    if handler is None:
                        raise
                    result = handler(exc)
                return _build(result)
        return _build(Response(404, APPLICATION_JSON, NOT_FOUND_BODY))

    def _handler_for(self, exc: Exception) -> ExceptionHandler | None:
        for kind in type(exc).__mro__:
            handler = self._exception_handlers.get(kind)
            if handler is not None:
                return handler
        return None


def _json_default(value: Any) -> Any:
    """What powertools' JSON encoder adds to the standard one for Decimals (its dataclass support is unused)."""
    if isinstance(value, Decimal):
        return math.nan if value.is_nan() else str(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _build(result: Any) -> dict[str, Any]:
    """The payload-2.0 response powertools builds for a Response or a plain body (the two kinds of answer the
    relay's routes give)."""
    if isinstance(result, Response):
        response: Response[Any] = result
    else:
        response = Response(200, APPLICATION_JSON, result)
    body: Any = response.body
    content_type = response.headers.get("Content-Type", "")
    if isinstance(content_type, list):
        content_type = content_type[0] if content_type else ""
    if content_type.startswith(APPLICATION_JSON) and not isinstance(body, str):
        body = json.dumps(body, separators=(",", ":"), default=_json_default)
    encoded = isinstance(body, bytes)
    if encoded:
        body = base64.b64encode(body).decode()
    headers = {name: value if isinstance(value, str) else ", ".join(value) for name, value in response.headers.items()}
    return {
        "statusCode": response.status_code,
        "body": body,
        "isBase64Encoded": encoded,
        "headers": headers,
        "cookies": [],  # the relay sets none
    }
