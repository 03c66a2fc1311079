"""WooCommerce's orders, listed for reconciliation: `GET /wp-json/wc/v3/orders`, whose resources are the very JSON
an order webhook delivers (WooCommerce builds the webhook's payload with the same REST controller), so
platforms/woocommerce.py reads both alike and keeps the identity `order_id:order_key`.

What it relies on (woocommerce-rest-api-docs `_orders.md`, `_authentication.md`, `_introduction.md`, quoted in
shared/reference/reconcile-and-tenants.md A.3): `modified_after`/`modified_before` with `dates_are_gmt=true` (else
the store's local time is meant), `orderby=date`, `order=asc`, `per_page` at most 100 and `page`; Basic auth with
a **Read** REST key over HTTPS. The window is by modification, so an order paid or refunded within it is found
whenever it was created; the end is fixed to the run's, so pages do not drift while orders change."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator

from postback_relay.core.reconcile import Page, Window
from postback_relay.reconcile.api import ApiClient, ApiError

NAME = "woocommerce"
KEY_FIELD = "woocommerce_consumer_key"
SECRET_FIELD = "woocommerce_consumer_secret"  # noqa: S105 - the name of a field, not a secret
PAGE_SIZE = 100
REVERSED = frozenset({"refunded", "cancelled"})
ORDERS_PATH = "/wp-json/wc/v3/orders"


def _gmt(moment: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(moment))


class WooCommerceOrders:
    """The orders modified within the window: the refunded and cancelled first, then the rest oldest first."""

    source = NAME

    def __init__(self, api: ApiClient) -> None:
        self._api = api

    @staticmethod
    def headers(key: str, secret: str) -> dict[str, str]:
        """HTTP Basic with the consumer key and secret (the store must be served over HTTPS)."""
        token = base64.b64encode(f"{key}:{secret}".encode()).decode("ascii")
        return {"Authorization": f"Basic {token}"}

    def notes(self, window: Window) -> list[str]:
        """Nothing the API cannot give: WooCommerce keeps its orders."""
        return []

    def probe(self) -> None:
        """One order, the cheapest read a Read key allows."""
        self._api.get_json(ORDERS_PATH, [("per_page", "1"), ("dates_are_gmt", "true")])

    def pages(self, window: Window, cursor: str | None = None) -> Iterator[Page]:
        """The window's pages oldest first, until one comes back short; ``cursor`` is the number of the page to
        resume at. Each order carries its current status, so a refunded one is read refunded wherever it lies
        (each page's refunded and cancelled go first all the same). ApiError when a page is not a list of
        orders."""
        params = [
            ("modified_after", _gmt(window.since)),
            ("modified_before", _gmt(window.until)),
            ("dates_are_gmt", "true"),
            ("orderby", "date"),
            ("order", "asc"),
            ("per_page", str(PAGE_SIZE)),
        ]
        number = int(cursor) if cursor and cursor.isdigit() else 1
        while True:
            listed = self._api.get_json(ORDERS_PATH, [*params, ("page", str(number))])
            if not isinstance(listed, list) or not all(isinstance(order, dict) and "id" in order for order in listed):
                raise ApiError("WooCommerce's orders page is not a list of orders")
            number += 1
            last = len(listed) < PAGE_SIZE
            yield Page(
                sorted(listed, key=lambda order: order.get("status") not in REVERSED), None if last else str(number)
            )
            if last:
                return
