"""A local Stripe API, the part reconciliation reads: `GET /v1/events` over HTTPS on loopback, answering as Stripe
documents it (docs.stripe.com/api/events/list): the filters `types[]`, `created[gte]`, `created[lte]`, pages of
`limit` (at most 100, default 10) newest first, `starting_after`, `has_more`; a Bearer key checked, Stripe's error
bodies for a wrong or expired key, and 429s with Retry-After when a test asks for them."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tests.support.platform_api import Answer, ApiRequest, PlatformApi

if TYPE_CHECKING:
    import trustme

API_KEY = "rk_test_reconcile_canary_51Hx"  # a restricted key, as the README asks for


@dataclass
class StripeState:
    """The account's events and how the API behaves; tests change it."""

    key: str = API_KEY
    events: list[dict[str, Any]] = field(default_factory=list)
    expired: bool = False
    throttle: int = 0  # this many next requests are answered 429
    requests: list[dict[str, list[str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self.lock:
            self.events.clear()
            self.requests.clear()
            self.expired, self.throttle, self.key = False, 0, API_KEY


def _error(message: str, kind: str, code: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"message": message, "type": kind}
    if code:
        error["code"] = code
    return {"error": error}


class StripeApi(PlatformApi):
    """The server; ``state`` is what it holds and how it answers."""

    def __init__(self, authority: trustme.CA) -> None:
        self.state = StripeState()
        super().__init__(authority)

    def answer(self, request: ApiRequest) -> Answer:
        state = self.state
        with state.lock:
            state.requests.append(request.params)
            given = request.headers.get("authorization", "")
            if given != f"Bearer {state.key}":
                shown = given.removeprefix("Bearer ")[:8] + "****"
                return 401, _error(f"Invalid API Key provided: {shown}", "invalid_request_error"), {}
            if state.expired:
                message = "Expired API Key provided: rk_test_****. Create a new key."
                return 401, _error(message, "invalid_request_error", "api_key_expired"), {}
            if state.throttle > 0:
                state.throttle -= 1
                message = "Request rate limit exceeded."
                return 429, _error(message, "invalid_request_error", "rate_limit"), {"Retry-After": "0"}
            if request.path != "/v1/events":
                return 404, _error(f"Unrecognized request URL (GET: {request.path})", "invalid_request_error"), {}
            return 200, self._events(request.params), {}

    def _events(self, params: dict[str, list[str]]) -> dict[str, Any]:
        types = set(params.get("types[]", []))
        since = int(params.get("created[gte]", ["0"])[0])
        until = int(params.get("created[lte]", [str(2**40)])[0])
        limit = max(1, min(100, int(params.get("limit", ["10"])[0])))
        listed = [
            event
            for event in self.state.events
            if (not types or event["type"] in types) and since <= event["created"] <= until
        ]
        listed.sort(key=lambda event: (event["created"], event["id"]), reverse=True)  # newest first
        after = params.get("starting_after", [None])[0]
        if after is not None:
            ids = [event["id"] for event in listed]
            listed = listed[ids.index(after) + 1 :] if after in ids else []
        page = listed[:limit]
        return {"object": "list", "data": page, "has_more": len(listed) > limit, "url": "/v1/events"}
