"""A local Stripe API, the part reconciliation reads: `GET /v1/events` and the object lists `GET /v1/charges`,
`/v1/checkout/sessions`, `/v1/invoices` and `/v1/payment_intents` over HTTPS on loopback, answering as Stripe
documents its lists (docs.stripe.com/api/events/list, docs.stripe.com/api/pagination): the filters `types[]`
(events), `status` (sessions and invoices), `created[gte]`, `created[lte]`, pages of `limit` (at most 100,
default 10) newest first, `starting_after`, `has_more`; a Bearer key checked, Stripe's error bodies for a wrong or
expired key, and 429s with Retry-After when a test asks for them (on any path, or on one)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tests.support.platform_api import Answer, ApiRequest, PlatformApi

if TYPE_CHECKING:
    import trustme

API_KEY = "rk_test_reconcile_canary_51Hx"  # a restricted key, as the README asks for
CHARGES, SESSIONS, INVOICES, PAYMENT_INTENTS = (
    "/v1/charges",
    "/v1/checkout/sessions",
    "/v1/invoices",
    "/v1/payment_intents",
)
OBJECT_PATHS = (CHARGES, SESSIONS, INVOICES, PAYMENT_INTENTS)
STATUS_FILTERED = (SESSIONS, INVOICES)  # the lists with a `status` filter (the others have none)


@dataclass
class StripeState:
    """The account's events and how the API behaves; tests change it."""

    key: str = API_KEY
    events: list[dict[str, Any]] = field(default_factory=list)
    objects: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {path: [] for path in OBJECT_PATHS})
    expired: bool = False
    throttle: int = 0  # this many next requests are answered 429
    throttle_path: str | None = None  # ... those to this path only (None: any)
    requests: list[dict[str, list[str]]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)  # each request's path, in order
    versions: list[str | None] = field(default_factory=list)  # each request's Stripe-Version header
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self.lock:
            self.events.clear()
            for listed in self.objects.values():
                listed.clear()
            self.requests.clear()
            self.paths.clear()
            self.versions.clear()
            self.expired, self.throttle, self.throttle_path, self.key = False, 0, None, API_KEY


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
            state.paths.append(request.path)
            state.versions.append(request.headers.get("stripe-version"))
            given = request.headers.get("authorization", "")
            if given != f"Bearer {state.key}":
                shown = given.removeprefix("Bearer ")[:8] + "****"
                return 401, _error(f"Invalid API Key provided: {shown}", "invalid_request_error"), {}
            if state.expired:
                message = "Expired API Key provided: rk_test_****. Create a new key."
                return 401, _error(message, "invalid_request_error", "api_key_expired"), {}
            if state.throttle > 0 and state.throttle_path in (None, request.path):
                state.throttle -= 1
                message = "Request rate limit exceeded."
                return 429, _error(message, "invalid_request_error", "rate_limit"), {"Retry-After": "0"}
            if request.path == "/v1/events":
                types = set(request.params.get("types[]", []))
                events = [event for event in state.events if not types or event["type"] in types]
                return 200, _listed(request.path, events, request.params), {}
            if request.path in OBJECT_PATHS:
                status = request.param("status") if request.path in STATUS_FILTERED else None
                objects = [obj for obj in state.objects[request.path] if status in (None, obj.get("status"))]
                return 200, _listed(request.path, objects, request.params), {}
            return 404, _error(f"Unrecognized request URL (GET: {request.path})", "invalid_request_error"), {}


def _listed(path: str, items: list[dict[str, Any]], params: dict[str, list[str]]) -> dict[str, Any]:
    """One page of a Stripe list: ``items`` created in `created[gte]`..`created[lte]`, newest first, after
    `starting_after`, `limit` of them."""
    since = int(params.get("created[gte]", ["0"])[0])
    until = int(params.get("created[lte]", [str(2**40)])[0])
    limit = max(1, min(100, int(params.get("limit", ["10"])[0])))
    listed = [item for item in items if since <= item["created"] <= until]
    listed.sort(key=lambda item: (item["created"], item["id"]), reverse=True)  # newest first
    after = params.get("starting_after", [None])[0]
    if after is not None:
        ids = [item["id"] for item in listed]
        listed = listed[ids.index(after) + 1 :] if after in ids else []
    page = listed[:limit]
    return {"object": "list", "data": page, "has_more": len(listed) > limit, "url": path}
