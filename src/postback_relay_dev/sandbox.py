"""A local TrafficStars that answers exactly as the S2S tracking spec documents, over HTTPS on loopback.

GET /api/v1/cpa/action/{click_id}?value=…&lead_code=…&key=… (the path form), or
GET /api/v1/cpa/action?clickid=…&goalid=…&value=…&price=…&lead_code=…&allow_duplicates=…&key=… (the query
form, whose click id errors are "clickid is empty" and "clickid is short") →
  {"ok": true}; or {"error": {"msg": "invalid code" | "invalid key" | "invalid price value: '…'" |
  "the price should be between 0.010 and 200.000" |
  "The transfer of the lead_code is possible only with the https protocol"}}.
It records every request (key redacted) and can be told to fail, so tests and `make run` can watch
what the relay sends. Control: GET /__sandbox/requests, POST /__sandbox/reset, POST /__sandbox/outage (every
postback answered 503) and POST /__sandbox/recover."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from postback_relay_dev.loopback import LoopbackServer

if TYPE_CHECKING:
    import trustme

ACTION_PATH = re.compile(r"^/api/v1/cpa/action/(?P<click_id>[^/?]*)$")
QUERY_FORM_PATH = "/api/v1/cpa/action"
CLICK_ID = re.compile(r"^[0-9a-f]{40}$")
HTTPS_ONLY = "The transfer of the lead_code is possible only with the https protocol"


@dataclass(frozen=True)
class Received:
    """One postback as the sandbox saw it; ``key_matched`` instead of the key itself."""

    click_id: str
    params: dict[str, str]
    key_matched: bool
    http_status: int
    answer: dict[str, Any]
    at: float
    form: str = "path"  # which URL form it came in: path or query
    account: str | None = None  # whose key it carried: "default" (``key``), a label of ``accounts``, or None


Fault = Callable[["Received"], "tuple[int, str] | None"]


@dataclass
class SandboxState:
    """What the sandbox accepts and what it has seen; tests change ``fault`` and ``delay_seconds``."""

    key: str
    configured_key: str = ""
    # Other TrafficStars accounts this sandbox also answers for (label → key): several tenants' keys.
    accounts: dict[str, str] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    fault: Fault | None = None
    delay_seconds: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)
    generation: int = 0  # bumped by reset(): a request still in flight from before is not recorded after it

    def accepted(self) -> list[Received]:
        """Postbacks answered {"ok": true}."""
        with self.lock:
            return [r for r in self.received if r.answer.get("ok") is True]

    def __post_init__(self) -> None:
        self.configured_key = self.configured_key or self.key

    def reset(self) -> None:
        """Forget what was received, stop any fault and restore the configured key."""
        with self.lock:
            self.received.clear()
            self.generation += 1
        self.key = self.configured_key
        self.accounts = {}
        self.fault = None
        self.delay_seconds = 0.0


def answer_for(
    click_id: str, params: dict[str, str], key: str, https: bool, form: str = "path"
) -> tuple[int, dict[str, Any]]:
    """The spec's answer to one postback (HTTP 200 for ok, 400 for its errors)."""
    if form == "query" and not click_id:
        return 400, {"error": {"msg": "clickid is empty"}}
    if form == "query" and len(click_id) < 40:
        return 400, {"error": {"msg": "clickid is short"}}
    if not CLICK_ID.fullmatch(click_id):
        return 400, {"error": {"msg": "invalid code"}}
    if "lead_code" in params and not https:
        return 400, {"error": {"msg": HTTPS_ONLY}}
    if ("lead_code" in params or "key" in params) and params.get("key") != key:
        return 400, {"error": {"msg": "invalid key"}}
    amounts = ("value", "price") if form == "query" else ("value",)
    for name in (name for name in amounts if name in params):
        try:
            value = Decimal(params[name])
        except InvalidOperation:
            return 400, {"error": {"msg": f"invalid price value: '{params[name]}'"}}
        if not value.is_finite():
            return 400, {"error": {"msg": f"invalid price value: '{params[name]}'"}}
        if not Decimal("0.01") <= value <= Decimal("200.0"):
            return 400, {"error": {"msg": "the price should be between 0.010 and 200.000"}}
    return 200, {"ok": True}


class _Handler(BaseHTTPRequestHandler):
    state: SandboxState  # set on the subclass each sandbox serves
    https: bool
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: with Nagle on, the body waits ~40 ms for a delayed ACK on every
    # reused connection. A real server does not stall like that, so neither does the sandbox.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        return  # the relay logs what matters; the key must not reach stderr from here either

    def do_GET(self) -> None:
        state = self.state
        parts = urlsplit(self.path)
        if parts.path == "/__sandbox/requests":
            with state.lock:
                rows = [
                    {
                        "click_id": r.click_id,
                        "params": r.params,
                        "key_matched": r.key_matched,
                        "http_status": r.http_status,
                        "answer": r.answer,
                        "at": r.at,
                        "form": r.form,
                    }
                    for r in state.received
                ]
            self._reply(200, json.dumps(rows))
            return
        match = ACTION_PATH.match(parts.path)
        form = "query" if parts.path == QUERY_FORM_PATH else "path"
        if match is None and form == "path":
            self._reply(404, json.dumps({"error": {"msg": "not found"}}))
            return
        generation = state.generation
        if state.delay_seconds:
            time.sleep(state.delay_seconds)
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        click_id = params.get("clickid", "") if match is None else match.group("click_id")
        given = params.get("key")
        account = "default" if given == state.key else next((a for a, k in state.accounts.items() if k == given), None)
        expected = state.key if account in (None, "default") else state.accounts[str(account)]
        status, answer = answer_for(click_id, params, expected, self.https, form)
        key_matched = account is not None
        shown = {k: ("***" if k == "key" else v) for k, v in params.items()}
        received = Received(click_id, shown, key_matched, status, answer, time.time(), form, account)
        fault = state.fault(received) if state.fault else None
        if fault is not None:
            status, body = fault
            received = Received(click_id, shown, key_matched, status, {"fault": body}, time.time(), form, account)
            with state.lock:
                if state.generation == generation:
                    state.received.append(received)
            self._reply(status, body)
            return
        with state.lock:
            if state.generation == generation:
                state.received.append(received)
        self._reply(status, json.dumps(answer))

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        if path == "/__sandbox/reset":
            self.state.reset()
            self._reply(200, json.dumps({"ok": True}))
            return
        if path == "/__sandbox/outage":  # answer every postback 503 until /__sandbox/recover
            self.state.fault = lambda received: (503, json.dumps({"error": {"msg": "sandbox outage"}}))
            self._reply(200, json.dumps({"ok": True, "outage": True}))
            return
        if path == "/__sandbox/recover":
            self.state.fault = None
            self._reply(200, json.dumps({"ok": True, "outage": False}))
            return
        self._reply(405, json.dumps({"error": {"msg": "method not allowed"}}))

    def _reply(self, status: int, body: str) -> None:
        payload = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class TrafficStarsSandbox:
    """The sandbox server, run in a background thread."""

    def __init__(self, key: str, authority: trustme.CA | None, host: str = "127.0.0.1", port: int = 0) -> None:
        """Over HTTPS with a certificate ``authority`` issues (clients trust ``authority.cert_pem``, e.g. via
        REQUESTS_CA_BUNDLE), over plain HTTP without one. The certificate names the loopback addresses and
        localhost as well as ``host``, and its key never leaves memory."""
        self.state = SandboxState(key=key)
        handler = type("SandboxHandler", (_Handler,), {"state": self.state, "https": authority is not None})
        self._server = LoopbackServer(handler, authority, host, port, name="trafficstars-sandbox")
        self.base_url = f"{self._server.base_url}/api/v1/cpa/action"

    def start(self) -> TrafficStarsSandbox:
        """Start serving; returns self."""
        self._server.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.stop()
