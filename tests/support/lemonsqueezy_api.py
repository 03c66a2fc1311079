"""A local Lemon Squeezy API, the part reconciliation reads: `GET /v1/orders` over HTTPS on loopback, as
docs.lemonsqueezy.com/api/orders/list-all-orders and …/api/getting-started/responses show it: a JSON:API document
of Order objects newest first (by created_at), pages of `page[size]` (default 10, at most 100) by `page[number]`,
`meta.page` (currentPage, from, lastPage, perPage, to, total) and `links` (first, last, and next when there is
one); a Bearer key checked and refused with Lemon Squeezy's JSON:API 401 body, and 429s when a test asks."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from tests.support.platform_api import Answer, ApiRequest, PlatformApi

if TYPE_CHECKING:
    import trustme

API_KEY = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.lemonsqueezy_reconcile_canary_4c2d"  # its keys are JWTs
UNAUTHENTICATED = {
    "jsonapi": {"version": "1.0"},
    "errors": [{"detail": "Unauthenticated.", "status": "401", "title": "Unauthorized"}],
}


@dataclass
class LemonSqueezyState:
    """The account's orders and how the API behaves; tests change it."""

    key: str = API_KEY
    orders: list[dict[str, Any]] = field(default_factory=list)
    throttle: int = 0  # this many next requests are answered 429
    requests: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self.lock:
            self.orders.clear()
            self.requests.clear()
            self.throttle, self.key = 0, API_KEY


class LemonSqueezyApi(PlatformApi):
    """The server; ``state`` is what it holds and how it answers."""

    content_type = "application/vnd.api+json"

    def __init__(self, authority: trustme.CA) -> None:
        self.state = LemonSqueezyState()
        super().__init__(authority)

    def answer(self, request: ApiRequest) -> Answer:
        state = self.state
        params = {name: values[0] for name, values in request.params.items()}
        with state.lock:
            state.requests.append(params)
            if request.headers.get("authorization") != f"Bearer {state.key}":
                return 401, UNAUTHENTICATED, {}
            if state.throttle > 0:
                state.throttle -= 1
                return (
                    429,
                    {"jsonapi": {"version": "1.0"}, "errors": [{"status": "429", "title": "Too Many Requests"}]},
                    {},
                )
            if request.path != "/v1/orders":
                return 404, {"jsonapi": {"version": "1.0"}, "errors": [{"status": "404", "title": "Not Found"}]}, {}
            return 200, self._orders(params), {}

    def _orders(self, params: dict[str, str]) -> dict[str, Any]:
        listed = sorted(self.state.orders, key=lambda order: order["attributes"]["created_at"], reverse=True)
        size = max(1, min(100, int(params.get("page[size]", "10"))))
        number = max(1, int(params.get("page[number]", "1")))
        last = max(1, -(-len(listed) // size))
        page = listed[(number - 1) * size : number * size]
        links = {"first": self._link(1, size), "last": self._link(last, size)}
        if number < last:
            links["next"] = self._link(number + 1, size)
        start = (number - 1) * size + 1
        meta = {
            "currentPage": number,
            "from": start if page else None,
            "lastPage": last,
            "perPage": size,
            "to": start + len(page) - 1 if page else None,
            "total": len(listed),
        }
        return {"meta": {"page": meta}, "jsonapi": {"version": "1.0"}, "links": links, "data": page}

    def _link(self, number: int, size: int) -> str:
        query = urlencode({"page[number]": number, "page[size]": size, "sort": "-createdAt"})
        return f"{self.base_url}/v1/orders?{query}"
