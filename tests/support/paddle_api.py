"""A local Paddle Billing API, the part reconciliation reads: `GET /events` over HTTPS on loopback, answering as
Paddle documents it (developer.paddle.com/api-reference/events/list-events, the changelogs on `event_type` and
`from`/`to`): the filters `event_type` (a comma list), `from` and `to` (RFC 3339, over `occurred_at`), `order_by`
(`id[ASC]` or `id[DESC]`), pages of `per_page` (default 50; more than 200 gets 200) after the event `after` names,
and `meta.pagination` with `per_page`, `next` (the same query with the page's last id as `after`), `has_more` and
`estimated_total`, the shape of paddle-python-sdk's list_default.json fixture. The Bearer key is checked: a wrong
or revoked one is 403 `invalid_token`, a key without the events permission 403 `forbidden`, each in Paddle's error
body; 429 `too_many_requests` with Retry-After when a test asks for it."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from tests.support.platform_api import Answer, ApiRequest, PlatformApi

if TYPE_CHECKING:
    import trustme

API_KEY = "pdl_live_apikey_01reconcilecanary_x7Qp"  # Paddle's key format (api-reference/about/authentication)


@dataclass
class PaddleState:
    """The account's events and how the API behaves; tests change it."""

    key: str = API_KEY
    events: list[dict[str, Any]] = field(default_factory=list)
    permitted: bool = True  # False: the key lacks the permission to list events
    dated: bool = True  # False: `from`/`to` are not applied (an API from before they were added)
    throttle: int = 0  # this many next requests are answered 429
    requests: list[ApiRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self.lock:
            self.events.clear()
            self.requests.clear()
            self.key, self.permitted, self.dated, self.throttle = API_KEY, True, True, 0

    def listings(self) -> list[ApiRequest]:
        """The requests that listed the window (not a probe's)."""
        return [request for request in self.requests if "event_type" in request.params]


def _error(code: str, detail: str) -> dict[str, Any]:
    """Paddle's error body (developer.paddle.com/errors/shared/…)."""
    return {
        "error": {
            "type": "request_error",
            "code": code,
            "detail": detail,
            "documentation_url": f"https://developer.paddle.com/errors/shared/{code}",
        },
        "meta": {"request_id": str(uuid.uuid4())},
    }


def _moment(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


class PaddleApi(PlatformApi):
    """The server; ``state`` is what it holds and how it answers."""

    def __init__(self, authority: trustme.CA) -> None:
        self.state = PaddleState()
        super().__init__(authority)

    def answer(self, request: ApiRequest) -> Answer:
        state = self.state
        with state.lock:
            state.requests.append(request)
            if request.headers.get("authorization", "") != f"Bearer {state.key}":
                return 403, _error("invalid_token", "Invalid or revoked API key."), {}
            if not state.permitted:
                return 403, _error("forbidden", "You aren't permitted to perform this request."), {}
            if state.throttle > 0:
                state.throttle -= 1
                return 429, _error("too_many_requests", "Too many requests."), {"Retry-After": "0"}
            if request.path != "/events":
                return 404, _error("not_found", "Entity not found."), {}
            return 200, self._events(request), {}

    def _events(self, request: ApiRequest) -> dict[str, Any]:
        types = set(filter(None, (request.param("event_type") or "").split(",")))
        since = _moment(request.param("from") or "1970-01-01T00:00:00Z") if self.state.dated else 0.0
        until = _moment(request.param("to") or "9999-12-31T00:00:00Z") if self.state.dated else float("inf")
        descending = request.param("order_by", "id[ASC]") == "id[DESC]"
        per_page = max(1, min(200, int(request.param("per_page") or "50")))
        listed = [
            event
            for event in self.state.events
            if (not types or event["event_type"] in types) and since <= _moment(event["occurred_at"]) <= until
        ]
        listed.sort(key=lambda event: str(event["event_id"]), reverse=descending)
        total = len(listed)
        after = request.param("after")
        if after is not None:
            listed = [e for e in listed if (e["event_id"] < after if descending else e["event_id"] > after)]
        page = listed[:per_page]
        query = {name: values[0] for name, values in request.params.items()}
        query["after"] = page[-1]["event_id"] if page else after or ""
        return {
            "data": page,
            "meta": {
                "pagination": {
                    "per_page": per_page,
                    "next": f"{self.base_url}/events?{urlencode(query)}",
                    "has_more": len(listed) > per_page,
                    "estimated_total": total,
                },
                "request_id": str(uuid.uuid4()),
            },
        }
