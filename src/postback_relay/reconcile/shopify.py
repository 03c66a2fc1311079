"""Shopify's orders, listed for reconciliation from the GraphQL Admin API (the REST Admin API is legacy since
October 2024), each order node adapted to the REST order JSON an `orders/*` webhook delivers, so
platforms/shopify.py reads both alike: the same order id, so the same identity and lead code, and the same click
id (a cart attribute, else the landing page's parameter).

What it relies on (shared/reference/reconcile-and-tenants.md A.2, and the pages it quotes):
- `POST /admin/api/{API_VERSION}/graphql.json` with `X-Shopify-Access-Token` (shopify.dev/docs/api/admin-rest);
  a custom app's Admin API token with the `read_orders` scope only.
- `orders(first, after, query, sortKey: UPDATED_AT)` with `pageInfo { hasNextPage endCursor }`
  (shopify.dev/docs/api/admin-graphql/2025-10/enums/ordersortkeys), filtered by `updated_at:>='…'`: the window is
  by update, so an order paid or refunded within it is found whenever it was created; its end is fixed to the
  run's, so an order updated while the run pages moves past the end (the next run's window finds it).
- Without `read_all_orders` only the last 60 days of orders are visible
  (shopify.dev/docs/api/admin-graphql/2025-10/enums/Audience, the Order note): an older window is said in the notes.
- Rate limits are by query cost: a throttled query is a 200 whose `errors` carry `extensions.code: THROTTLED` and
  whose `extensions.cost` says what was asked (`requestedQueryCost`) and what is left and restored per second
  (`throttleStatus`) (shopify.dev/docs/apps/build/apis/graphql-admin/rate-limits; the body as
  community.shopify.com/t/throttled/254776 shows it): the run waits until the bucket holds the query's cost.
  A scope the token lacks is an `ACCESS_DENIED` error; a wrong token a 401.

The mapping (GraphQL → REST): `legacyResourceId` → `id` (GraphQL's `id` is a gid), `displayFinancialStatus`
lowercased → `financial_status` (the enum's values are REST's, upper-cased), `customAttributes{key,value}` →
`note_attributes{name,value}`, `totalPriceSet`/`currentTotalPriceSet.shopMoney` → `total_price`/
`current_total_price` and `currency` (REST's amounts are the shop's currency), `customerJourneySummary`'s last
visit's landing page (else the first's) → `landing_site`, `cancelledAt` → `cancelled_at`.

Assumed, not confirmed against a live shop: that REST's `landing_site` is the last visit's landing page (the
reference leaves it open; the first visit is the fallback); that a landing page withheld as protected customer
data comes back null with a field error whose path lies below the order (read as such, not as a refusal); and
that the `orders` connection lists every status (open, closed, cancelled) without a `status:` filter."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from aws_lambda_powertools import Logger

from postback_relay.core.reconcile import Page, Window
from postback_relay.reconcile.api import ApiClient, ApiError, CredentialsRefused

logger = Logger(child=True)

NAME = "shopify"
TOKEN_FIELD = "shopify_admin_token"  # noqa: S105 - the name of a field, not a secret
API_VERSION = "2025-10"
GRAPHQL_PATH = f"/admin/api/{API_VERSION}/graphql.json"
PAGE_SIZE = 100
VISIBLE_SECONDS = 60 * 86_400  # what Shopify shows without read_all_orders

ORDER_FIELDS = """
      id legacyResourceId name test displayFinancialStatus createdAt processedAt updatedAt cancelledAt
      totalPriceSet { shopMoney { amount currencyCode } }
      currentTotalPriceSet { shopMoney { amount currencyCode } }
      customAttributes { key value }
      customerJourneySummary { firstVisit { landingPage } lastVisit { landingPage } }"""
ORDERS_QUERY = f"""query ReconcileOrders($query: String!, $after: String) {{
  orders(first: {PAGE_SIZE}, after: $after, query: $query, sortKey: UPDATED_AT) {{
    nodes {{{ORDER_FIELDS}
    }}
    pageInfo {{ hasNextPage endCursor }}
  }}
}}"""
PROBE_QUERY = "query ReconcileProbe { orders(first: 1) { nodes { id } } }"


def _utc(moment: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))


class ShopifyOrders:
    """The orders updated within the window, by update time: each page's refunded and cancelled first, its
    partially refunded last (after the paid order each was)."""

    source = NAME

    def __init__(self, api: ApiClient, now: float) -> None:
        self._api = api
        self._now = now

    @staticmethod
    def headers(token: str) -> dict[str, str]:
        """The Admin API's authorization: the app's access token in its own header."""
        return {"X-Shopify-Access-Token": token}

    def notes(self, window: Window) -> list[str]:
        """What the window asks that the token may not see."""
        if window.since < self._now - VISIBLE_SECONDS:
            return [
                "Shopify shows only the last 60 days of orders without the read_all_orders scope: "
                "older orders in the window were listed only if the app has it"
            ]
        return []

    def probe(self) -> None:
        """One order's id, the cheapest read that needs `read_orders`."""
        self._query(PROBE_QUERY, {})

    def pages(self, window: Window, cursor: str | None = None) -> Iterator[Page]:
        """The window's pages by update time; ``cursor`` (a page's GraphQL end cursor) resumes after it. Each
        order carries its current status, so a refunded or cancelled one is read reversed wherever it lies,
        and each page's reversals go first all the same. ApiError when a page is not a list of orders."""
        variables: dict[str, Any] = {
            "query": f"updated_at:>='{_utc(window.since)}' updated_at:<='{_utc(window.until)}'",
            "after": cursor,
        }
        while True:
            data = self._query(ORDERS_QUERY, variables)
            orders = data.get("orders") if isinstance(data, dict) else None
            nodes = orders.get("nodes") if isinstance(orders, dict) else None
            info = orders.get("pageInfo") if isinstance(orders, dict) else None
            if not isinstance(nodes, list) or not all(isinstance(node, dict) for node in nodes):
                raise ApiError("Shopify's orders page is not a list of orders")
            if not isinstance(info, dict):
                raise ApiError("Shopify's orders page has no pageInfo")
            end = info.get("endCursor")
            more = info.get("hasNextPage") is True and isinstance(end, str) and bool(nodes)
            events = [event for node in nodes for event in webhook_orders(node)]
            yield Page(sorted(events, key=_reversals_first), end if more else None)
            if not more:
                return
            variables = {**variables, "after": end}

    def _query(self, query: str, variables: dict[str, Any]) -> Any:
        """The query's `data`; CredentialsRefused when a scope is missing, ApiError on any other GraphQL error
        (a throttled query is waited for and asked again by the client). An error about a field within an
        order (its path goes below `orders`: a landing page withheld as protected customer data) leaves that
        field null and the page is read all the same: the cart attribute may still carry the click id."""
        document = self._api.post_json(GRAPHQL_PATH, {"query": query, "variables": variables}, throttled_for)
        if not isinstance(document, dict):
            raise ApiError("Shopify's answer is not a GraphQL response")
        errors = document.get("errors")
        if not errors:
            return document.get("data")
        if not isinstance(errors, list):
            raise ApiError(f"GraphQL error: {_message(errors)}")
        fatal = [error for error in errors if not _within_an_order(error)]
        if not fatal:
            logger.warning("shopify fields withheld", extra={"errors": [_message([error]) for error in errors]})
            return document.get("data")
        message = _message(fatal)
        if any(_code(error) == "ACCESS_DENIED" for error in fatal):
            raise CredentialsRefused(f"ACCESS_DENIED: {message} (the app needs the read_orders scope)")
        raise ApiError(f"GraphQL error: {message}")


def throttled_for(document: Any) -> float | None:
    """For a THROTTLED answer, the seconds until the bucket holds the query's requested cost (0 when the answer
    does not say: the client's backoff then decides); None for any other answer."""
    errors = document.get("errors") if isinstance(document, dict) else None
    if not isinstance(errors, list) or not any(_code(error) == "THROTTLED" for error in errors):
        return None
    extensions = document.get("extensions")
    cost = extensions.get("cost") if isinstance(extensions, dict) else None
    status = cost.get("throttleStatus") if isinstance(cost, dict) else None
    try:
        requested = float(cost["requestedQueryCost"])  # type: ignore[index]
        available = float(status["currentlyAvailable"])  # type: ignore[index]
        restore = float(status["restoreRate"])  # type: ignore[index]
    except (KeyError, TypeError, ValueError):
        return 0.0
    return max(0.0, requested - available) / restore if restore > 0 else 0.0


def webhook_orders(node: dict[str, Any]) -> list[dict[str, Any]]:
    """The order node as the webhooks would have told it. A partially refunded order (not cancelled) was a
    paid order first, as `orders/paid` said, then a partial refund: both are listed, the paid order as it was
    (its original total), so the purchase is sent and then marked, as its webhooks would have had it. A fully
    refunded or cancelled order is only its reversal: it is recorded reversed and never sent."""
    order = webhook_order(node)
    if order["financial_status"] == "partially_refunded" and not order["cancelled_at"]:
        paid = {name: value for name, value in order.items() if name != "current_total_price"}
        return [{**paid, "financial_status": "paid"}, order]
    return [order]


def webhook_order(node: dict[str, Any]) -> dict[str, Any]:
    """One GraphQL order node in the shape of the REST order an `orders/*` webhook delivers (the fields
    platforms/shopify.py reads)."""
    legacy = node.get("legacyResourceId")
    status = node.get("displayFinancialStatus")
    total = _shop_money(node.get("totalPriceSet"))
    current = _shop_money(node.get("currentTotalPriceSet"))
    attributes = node.get("customAttributes")
    return {
        "id": int(legacy) if isinstance(legacy, str) and legacy.isascii() and legacy.isdigit() else legacy,
        "admin_graphql_api_id": node.get("id"),
        "name": node.get("name"),
        "test": node.get("test"),
        "financial_status": status.lower() if isinstance(status, str) else None,
        "created_at": node.get("createdAt"),
        "processed_at": node.get("processedAt"),
        "updated_at": node.get("updatedAt"),
        "cancelled_at": node.get("cancelledAt"),
        "total_price": total.get("amount"),
        "current_total_price": current.get("amount", total.get("amount")),
        "currency": total.get("currencyCode", current.get("currencyCode")),
        "note_attributes": [
            {"name": attribute.get("key"), "value": attribute.get("value")}
            for attribute in (attributes if isinstance(attributes, list) else [])
            if isinstance(attribute, dict)
        ],
        "landing_site": _landing_page(node.get("customerJourneySummary")),
    }


def _shop_money(price_set: Any) -> dict[str, Any]:
    money = price_set.get("shopMoney") if isinstance(price_set, dict) else None
    return money if isinstance(money, dict) else {}


def _landing_page(journey: Any) -> str | None:
    """The landing page of the visit that placed the order, else of the first visit (either may be null: a
    draft or POS order has no visits, and a shop may withhold the protected customer data)."""
    if not isinstance(journey, dict):
        return None
    for visit in (journey.get("lastVisit"), journey.get("firstVisit")):
        page = visit.get("landingPage") if isinstance(visit, dict) else None
        if isinstance(page, str) and page:
            return page
    return None


def _reversals_first(order: dict[str, Any]) -> int:
    """Refunded and cancelled orders first, as every listing does; a partial refund last, after the paid order
    it marks (a partial refund of a purchase not recorded yet would keep nothing)."""
    if order.get("cancelled_at") or order.get("financial_status") == "refunded":
        return 0
    return 2 if order.get("financial_status") == "partially_refunded" else 1


def _within_an_order(error: Any) -> bool:
    path = error.get("path") if isinstance(error, dict) else None
    return isinstance(path, list) and len(path) > 2 and path[:2] == ["orders", "nodes"]


def _code(error: Any) -> str | None:
    extensions = error.get("extensions") if isinstance(error, dict) else None
    code = extensions.get("code") if isinstance(extensions, dict) else None
    return code if isinstance(code, str) else None


def _message(errors: Any) -> str:
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        return " ".join(str(errors[0].get("message", "")).split())[:200]
    return " ".join(str(errors).split())[:200]
