"""A local WooCommerce REST API, the part reconciliation reads: `GET /wp-json/wc/v3/orders` over HTTPS on loopback,
as woocommerce-rest-api-docs `_orders.md` documents it: `modified_after`/`modified_before` (GMT with
`dates_are_gmt=true`), `order`, `per_page` (at most 100), `page`, `X-WP-Total`/`X-WP-TotalPages`; HTTP Basic with a
consumer key and secret, refused with WordPress's own error body."""

from __future__ import annotations

import base64
import json
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

if TYPE_CHECKING:
    import trustme

CONSUMER_KEY = "ck_reconcile_canary_7f1e"
CONSUMER_SECRET = "cs_reconcile_canary_2b9d"


@dataclass
class WooState:
    orders: list[dict[str, Any]] = field(default_factory=list)
    requests: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self.lock:
            self.orders.clear()
            self.requests.clear()


class WooCommerceApi:
    def __init__(self, authority: trustme.CA) -> None:
        self.state = WooState()
        state = self.state
        expected = "Basic " + base64.b64encode(f"{CONSUMER_KEY}:{CONSUMER_SECRET}".encode()).decode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                params = dict(parse_qsl(parts.query, keep_blank_values=True))
                headers: dict[str, str] = {}
                with state.lock:
                    state.requests.append(params)
                    if self.headers.get("Authorization") != expected:
                        status: int = 401
                        body: Any = {
                            "code": "woocommerce_rest_cannot_view",
                            "message": "Sorry, you cannot list resources.",
                            "data": {"status": 401},
                        }
                    elif parts.path != "/wp-json/wc/v3/orders" or params.get("dates_are_gmt") != "true":
                        status, body = 400, {"code": "rest_invalid_param", "message": "Invalid parameter(s)"}
                    else:
                        status = 200
                        after, before = params.get("modified_after", ""), params.get("modified_before", "~")
                        listed = [o for o in state.orders if after <= o["date_modified_gmt"] <= before]
                        listed.sort(key=lambda o: o["date_created_gmt"], reverse=params.get("order") != "asc")
                        size = min(100, int(params.get("per_page", "10")))
                        page = int(params.get("page", "1"))
                        body = listed[(page - 1) * size : page * size]
                        headers = {"X-WP-Total": str(len(listed)), "X-WP-TotalPages": str(-(-len(listed) // size))}
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        authority.issue_cert("127.0.0.1").configure_cert(context)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.base_url = f"https://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> WooCommerceApi:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
