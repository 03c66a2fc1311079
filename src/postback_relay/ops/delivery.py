"""A webhook request to the relay, as a platform sends it, re-signed and POSTed: what the operator CLI's `sign`
and the local run's `make send` deliver. It is read from an events/ file (an API Gateway payload-2.0 event,
its body possibly base64) or built around a bare webhook body, and signed with the registry's ``sign``, so a
platform's signature is written once, next to its verification."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import requests

from postback_relay.platforms import route_name, sign, sign_query

# Headers the HTTP client sets itself for the body it sends; an event file's copies would contradict it.
CLIENT_SET_HEADERS = ("host", "content-length")


@dataclass(frozen=True)
class Delivery:
    """One request: method, path, raw query string, headers (lower-case names) and the exact body bytes,
    which are what the signature covers."""

    method: str
    path: str
    raw_query: str
    headers: Mapping[str, str]
    body: bytes

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> Delivery:
        """The request an API Gateway payload-2.0 event describes."""
        raw = event.get("body") or ""
        body = base64.b64decode(raw) if event.get("isBase64Encoded") else str(raw).encode("utf-8")
        return cls(
            method=str(event["requestContext"]["http"]["method"]),
            path=str(event["rawPath"]),
            raw_query=str(event.get("rawQueryString") or ""),
            headers=dict(event.get("headers", {})),
            body=body,
        )

    @classmethod
    def for_body(cls, route: str, body: bytes, user_agent: str = "postback-relay sign") -> Delivery:
        """A bare JSON webhook body POSTed to ``route``'s webhook, its bytes kept exactly."""
        headers = {"content-type": "application/json", "user-agent": user_agent}
        return cls("POST", f"/webhooks/{route}", "", headers, body)

    @classmethod
    def read(cls, raw: bytes, route: str) -> Delivery:
        """An events/ file's request as it is, or a bare webhook body for ``route``; ValueError when ``raw``
        is not JSON."""
        document = json.loads(raw)
        if isinstance(document, dict) and "requestContext" in document and "rawPath" in document:
            return cls.from_event(document)
        return cls.for_body(route, raw)

    @property
    def route(self) -> str:
        """The registry's name of the route the request goes to (``stripe``, ``postback``, …), a tenant's
        route (``/webhooks/acme/stripe``, ``/postback/acme``) included."""
        if self.path == "/postback" or self.path.startswith("/postback/"):
            return "postback"
        return route_name(self.path)

    def to_tenant(self, tenant: str) -> Delivery:
        """The same request sent to tenant ``tenant``'s route (README "Tenants")."""
        route = self.route
        path = f"/postback/{tenant}" if route == "postback" else f"/webhooks/{tenant}/{route}"
        return replace(self, path=path)

    @property
    def target(self) -> str:
        """The path and, when there is one, the query string."""
        return f"{self.path}?{self.raw_query}" if self.raw_query else self.path

    def signed(self, secret: str, timestamp: int | None = None) -> Delivery:
        """The request with fresh signature headers for its route, made with ``secret`` now unless
        ``timestamp`` is given; the other headers are kept."""
        fresh = sign(self.route, self.body, secret, timestamp)
        headers = {**self.headers, **{name.lower(): value for name, value in fresh.items()}}
        return replace(self, headers=headers, raw_query=sign_query(self.route, self.raw_query, secret))

    def post(self, base_url: str, timeout: float = 15) -> requests.Response:
        """Send the request (method, path and query, headers, exact body) to the relay at ``base_url``."""
        headers = {name: value for name, value in self.headers.items() if name not in CLIENT_SET_HEADERS}
        url = base_url.rstrip("/") + self.target
        return requests.request(self.method, url, data=self.body or None, headers=headers, timeout=timeout)
