"""A local Shopify GraphQL Admin API, the part reconciliation reads: `POST /admin/api/{version}/graphql.json` over
HTTPS on loopback, answering the `orders` query as Shopify documents it: `first`, `after` (opaque base64 cursors,
as Shopify's are), `query` with `updated_at:>=`/`updated_at:<=` bounds, `sortKey: UPDATED_AT`, `nodes` and
`pageInfo { hasNextPage endCursor }`, each answer with its `extensions.cost`. The access token is checked
(Shopify's own 401 body when it is wrong); a test can have queries throttled (a 200 with a THROTTLED error) or
the orders scope denied (ACCESS_DENIED).

The orders are GraphQL order nodes as a test writes them; this server filters, sorts and pages them. It parses
only the query text the relay sends (the page size and which query it is), not GraphQL at large."""

from __future__ import annotations

import base64
import json
import re
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tests.support.platform_api import Answer, ApiRequest, PlatformApi

if TYPE_CHECKING:
    import trustme

ADMIN_TOKEN = "shpat_reconcile_canary_4c1d9e"
VERSION_PATH = re.compile(r"^/admin/api/\d{4}-\d{2}/graphql\.json$")
BOUND = re.compile(r"updated_at:(>=|<=)'([^']+)'")
FIRST = re.compile(r"orders\(first:\s*(\d+)")
INVALID_TOKEN = "[API] Invalid API key or access token (unrecognized login or wrong password)"


@dataclass
class ShopifyState:
    """The shop's orders and how the API behaves; tests change it."""

    token: str = ADMIN_TOKEN
    orders: list[dict[str, Any]] = field(default_factory=list)  # GraphQL order nodes
    throttle: int = 0  # this many next queries are answered THROTTLED
    denied: bool = False  # the token lacks read_orders: ACCESS_DENIED
    withheld: bool = False  # the landing pages are protected customer data the app may not read
    requests: list[dict[str, Any]] = field(default_factory=list)  # each query's {"query", "variables"}
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self.lock:
            self.orders.clear()
            self.requests.clear()
            self.token, self.throttle, self.denied, self.withheld = ADMIN_TOKEN, 0, False, False


def cost(requested: int, available: float = 1000.0) -> dict[str, Any]:
    """`extensions.cost` as every answer carries it (a restore rate high enough for a test not to wait)."""
    status = {"maximumAvailable": 1000.0, "currentlyAvailable": available, "restoreRate": 1000.0}
    return {"cost": {"requestedQueryCost": requested, "actualQueryCost": None, "throttleStatus": status}}


def cursor_of(node: dict[str, Any]) -> str:
    """A cursor like Shopify's: base64 of the sort key's last value and id."""
    last = {"last_id": int(node["legacyResourceId"]), "last_value": node["updatedAt"]}
    return base64.b64encode(json.dumps(last).encode()).decode()


def _sort_key(node: dict[str, Any]) -> tuple[str, int]:
    return node["updatedAt"], int(node["legacyResourceId"])


class ShopifyApi(PlatformApi):
    """The server; ``state`` is what it holds and how it answers."""

    def __init__(self, authority: trustme.CA) -> None:
        self.state = ShopifyState()
        super().__init__(authority)

    def answer(self, request: ApiRequest) -> Answer:
        state = self.state
        body = request.json() if request.body else {}
        with state.lock:
            state.requests.append(body)
            if request.headers.get("x-shopify-access-token") != state.token:
                return 401, {"errors": INVALID_TOKEN}, {}
            if request.method != "POST" or not VERSION_PATH.match(request.path):
                return 404, {"errors": "Not Found"}, {}
            query, variables = str(body.get("query", "")), body.get("variables") or {}
            first = int(match.group(1)) if (match := FIRST.search(query)) else 0
            requested = 2 + first * 3
            if state.throttle > 0:
                state.throttle -= 1
                error = {"message": "Throttled", "extensions": {"code": "THROTTLED"}}
                return 200, {"errors": [error], "extensions": cost(requested, available=1.0)}, {}
            if state.denied:
                message = "Access denied for orders field. Required access: `read_orders` access scope."
                error = {"message": message, "extensions": {"code": "ACCESS_DENIED"}, "path": ["orders"]}
                return 200, {"errors": [error], "data": None, "extensions": cost(requested)}, {}
            if not 1 <= first <= 250:
                error = {"message": "you must provide one of first or last (at most 250)"}
                return 200, {"errors": [error], "extensions": cost(requested)}, {}
            orders = self._orders(first, variables)
            answer: dict[str, Any] = {"data": {"orders": orders}, "extensions": cost(requested)}
            if self.state.withheld and "landingPage" in query:
                answer["errors"] = self._withhold(orders["nodes"])
            return 200, answer, {}

    @staticmethod
    def _withhold(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Each node's landing pages nulled, each with its field error (its path below the order), as a field
        the app may not read comes back: the rest of the answer stands."""
        errors = []
        for index, node in enumerate(nodes):
            journey = node.get("customerJourneySummary") or {}
            nodes[index] = {**node, "customerJourneySummary": {visit: {"landingPage": None} for visit in journey}}
            for visit in journey:
                path = ["orders", "nodes", index, "customerJourneySummary", visit, "landingPage"]
                message = "This app is not approved to access the landingPage field of CustomerVisit."
                errors.append({"message": message, "extensions": {"code": "ACCESS_DENIED"}, "path": path})
        return errors

    def _orders(self, first: int, variables: dict[str, Any]) -> dict[str, Any]:
        bounds = dict(BOUND.findall(str(variables.get("query") or "")))
        since, until = bounds.get(">=", ""), bounds.get("<=", "~")
        listed = sorted((n for n in self.state.orders if since <= n["updatedAt"] <= until), key=_sort_key)
        after = variables.get("after")
        if after:
            last = json.loads(base64.b64decode(after))
            listed = [n for n in listed if _sort_key(n) > (last["last_value"], last["last_id"])]
        page = listed[:first]
        return {
            "nodes": page,
            "pageInfo": {
                "hasNextPage": len(listed) > first,
                "endCursor": cursor_of(page[-1]) if page else None,
            },
        }
