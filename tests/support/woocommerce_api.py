"""A local WooCommerce REST API, the part reconciliation reads: `GET /wp-json/wc/v3/orders` over HTTPS on loopback,
as woocommerce-rest-api-docs `_orders.md` documents it: `modified_after`/`modified_before` (GMT with
`dates_are_gmt=true`), `order`, `per_page` (at most 100), `page`, `X-WP-Total`/`X-WP-TotalPages`; HTTP Basic with a
consumer key and secret, refused with WordPress's own error body."""

from __future__ import annotations

import base64
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tests.support.platform_api import Answer, ApiRequest, PlatformApi

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


class WooCommerceApi(PlatformApi):
    content_type = "application/json; charset=UTF-8"

    def __init__(self, authority: trustme.CA) -> None:
        self.state = WooState()
        self._expected = "Basic " + base64.b64encode(f"{CONSUMER_KEY}:{CONSUMER_SECRET}".encode()).decode()
        super().__init__(authority)

    def answer(self, request: ApiRequest) -> Answer:
        state = self.state
        params = {name: values[0] for name, values in request.params.items()}
        with state.lock:
            state.requests.append(params)
            if request.headers.get("authorization") != self._expected:
                body = {
                    "code": "woocommerce_rest_cannot_view",
                    "message": "Sorry, you cannot list resources.",
                    "data": {"status": 401},
                }
                return 401, body, {}
            if request.path != "/wp-json/wc/v3/orders" or params.get("dates_are_gmt") != "true":
                return 400, {"code": "rest_invalid_param", "message": "Invalid parameter(s)"}, {}
            after, before = params.get("modified_after", ""), params.get("modified_before", "~")
            listed = [o for o in state.orders if after <= o["date_modified_gmt"] <= before]
            listed.sort(key=lambda o: o["date_created_gmt"], reverse=params.get("order") != "asc")
            size = min(100, int(params.get("per_page", "10")))
            page = int(params.get("page", "1"))
            headers = {"X-WP-Total": str(len(listed)), "X-WP-TotalPages": str(-(-len(listed) // size))}
            return 200, listed[(page - 1) * size : page * size], headers
