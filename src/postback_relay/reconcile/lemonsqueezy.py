"""Lemon Squeezy's orders, listed for reconciliation, **report only**: its API cannot recover a conversion.

Why report only: the click id travels in the checkout's custom data, which Lemon Squeezy gives only to webhooks
(`meta.custom_data`, "available in Order, Subscription and License key related webhook events",
docs.lemonsqueezy.com/help/checkout/passing-custom-data); the API's Order object has no such field (its attributes,
docs.lemonsqueezy.com/api/orders, and the official SDK's `Order` type, lmsqueezy/lemonsqueezy.js
`src/orders/types.ts`, carry none). An order read from the API would be a conversion without a click id, which
TrafficStars cannot attribute. So a run records and sends nothing (relay/reconciling.Reconciler forces a dry run
for a report-only platform): it lists the paid orders the relay never saw, and the fix is Lemon Squeezy's own
resend ("Recent webhooks sent from your store are logged on the webhooks settings page … and also resend
webhooks", docs.lemonsqueezy.com/help/webhooks): Settings → Webhooks → the delivery → Resend, whose
`order_created` then arrives with its custom data and is recorded and sent as any webhook is.

Each order is handed over in its webhook's envelope (`{"meta": {"event_name": "order_created", …}, "data":
order}`, without custom data), so platforms/lemonsqueezy.py parses it as the webhook and gives it the same
identity, `orders/<id>`: one whose webhook was recorded is `already_recorded`; a missing one is a preview the
tally reports as never seen. A refunded order (status `refunded`) is ignored by the parser as not paid, with that
reason counted: nothing is owed for it, so it is no lost sale, and a reversal preview would be noise too, for
there is no record to reverse and this run writes none. A partly refunded order is still a sale and is reported
(its `order_created` was sent when it was `paid`, which is the status it is handed over with).

What it relies on (docs.lemonsqueezy.com/api/orders/list-all-orders, …/api/getting-started/requests and
…/responses, quoted in shared/reference/reconcile-and-tenants.md A.5): `GET /v1/orders` with
`Accept: application/vnd.api+json` and `Authorization: Bearer <key>`, "a paginated list of Order objects ordered
by created_at in descending", no date filter; JSON:API pages by `page[number]` and `page[size]` (at most 100),
with `meta.page` (`currentPage`, `lastPage`) and `links` (`next` when there is a next page). So the listing walks
the pages newest first and stops at the first order created before the window; a page's cursor is the next page's
number. An order created while the run walks pushes the older ones down a place, so a page may repeat the last
order of the one before (it is listed once: ids already listed are skipped), and none is skipped. Lemon Squeezy
allows 300 calls a minute; its keys have no scopes (full access to the account) and expire after a year, so a
refused key (`credentials_refused`) is the one to alarm on. Every store of the key's account is listed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from postback_relay.core.reconcile import Page, Window
from postback_relay.reconcile.api import ApiClient, ApiError

NAME = "lemonsqueezy"
KEY_FIELD = "lemonsqueezy_api_key"  # the API key's name in the relay's secret
ORDERS_PATH = "/v1/orders"
PAGE_SIZE = 100
EVENT_NAME = "order_created"  # the webhook an order's conversion comes from
REPORT_NOTE = (
    "Lemon Squeezy's API carries no custom data, so no click id: this run records and sends nothing, it only "
    "reports the paid orders the relay never saw; to recover each, resend its order_created webhook from "
    "Lemon Squeezy → Settings → Webhooks → the delivery → Resend"
)


class LemonSqueezyOrders:
    """The orders created within the window, newest first, each in its `order_created` webhook's envelope."""

    source = NAME

    def __init__(self, api: ApiClient) -> None:
        self._api = api

    @staticmethod
    def headers(key: str) -> dict[str, str]:
        """JSON:API's media type and the key as a Bearer token."""
        return {
            "Accept": "application/vnd.api+json",
            "Content-Type": "application/vnd.api+json",
            "Authorization": f"Bearer {key}",
        }

    def notes(self, window: Window) -> list[str]:
        """That this run only reports, and the fix for what it reports."""
        return [REPORT_NOTE]

    def probe(self) -> None:
        """One order, the cheapest read there is."""
        self._api.get_json(ORDERS_PATH, [("page[size]", "1")])

    def describe(self, event: dict[str, Any]) -> dict[str, Any]:
        """What an operator needs to find an order in the dashboard (its number, identifier, date, total, and
        status as the dashboard words it, which the envelope leaves as listed), and nothing personal: no
        customer name or email."""
        attributes = event["data"]["attributes"]
        shown = ("order_number", "identifier", "created_at", "total_formatted", "status_formatted", "test_mode")
        return {name: attributes.get(name) for name in shown if attributes.get(name) is not None}

    def pages(self, window: Window, cursor: str | None = None) -> Iterator[Page]:
        """The window's pages from page ``cursor`` (a number; None: the first), until the first order created
        before the window starts; orders newer than its end are left out (their webhooks may be on the way).
        ApiError when a page is not a JSON:API list of orders or an order's created_at cannot be read."""
        number = int(cursor) if cursor and cursor.isdigit() else 1
        listed: set[str] = set()
        while True:
            page = self._api.get_json(ORDERS_PATH, [("page[number]", str(number)), ("page[size]", str(PAGE_SIZE))])
            orders = page.get("data") if isinstance(page, dict) else None
            if not isinstance(orders, list) or not all(_is_order(order) for order in orders):
                raise ApiError("Lemon Squeezy's orders page is not a JSON:API list of orders")
            events: list[Any] = []
            ended = False
            for order in orders:
                created = _created(order)
                if created < window.since:
                    ended = True
                    break
                if created <= window.until and str(order["id"]) not in listed:
                    listed.add(str(order["id"]))
                    events.append(_as_webhook(order))
            more = not ended and bool(orders) and _has_next(page, number)
            number += 1
            yield Page(events, str(number) if more else None)
            if not more:
                return


def _is_order(order: Any) -> bool:
    return (
        isinstance(order, dict)
        and order.get("type") == "orders"
        and "id" in order
        and isinstance(order.get("attributes"), dict)
    )


def _created(order: dict[str, Any]) -> float:
    """The order's created_at (ISO 8601, e.g. 2026-11-02T10:14:03.000000Z; UTC when it names no
    zone) in epoch seconds."""
    stamp = order["attributes"].get("created_at")
    try:
        moment = datetime.fromisoformat(str(stamp))
    except ValueError:
        raise ApiError(f"Lemon Squeezy's order {order['id']} has no readable created_at") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _has_next(page: dict[str, Any], number: int) -> bool:
    """Whether a page follows page ``number``: `links.next`, or `meta.page.lastPage` beyond it."""
    links = page.get("links")
    if isinstance(links, dict) and links.get("next"):
        return True
    meta = page.get("meta")
    last = meta.get("page", {}).get("lastPage") if isinstance(meta, dict) else None
    return isinstance(last, int) and last > number


def _as_webhook(order: dict[str, Any]) -> dict[str, Any]:
    """The order in its `order_created` webhook's envelope (no custom data: the API has none). A partly
    refunded order is handed over `paid`, the status its webhook was sent with: it is still a sale."""
    attributes = order["attributes"]
    if attributes.get("status") == "partial_refund":
        order = {**order, "attributes": {**attributes, "status": "paid"}}
    meta = {"event_name": EVENT_NAME, "test_mode": attributes.get("test_mode") is True}
    return {"meta": meta, "data": order}
