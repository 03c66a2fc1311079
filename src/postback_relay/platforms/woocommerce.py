"""WooCommerce: `X-WC-Webhook-Signature` verification, the unsigned creation ping, which order states are
conversions, and where the click id is.

WooCommerce builds the payload when it delivers (the order as it is then, from the REST API), never retries,
and disables a webhook after a few failed deliveries: so every order that is not (yet) a conversion is
answered 200, and `order.created` and `order.updated` are read the same way, by the order's status. Its
delivery id is per second, not per event: identity is the order. A partial refund leaves the status as it
was and grows `refunds[]` (https://woocommerce.github.io/woocommerce-rest-api-docs/#order-properties): the
order's delivery then also notes the refunded amount."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from postback_relay.core.conversion import (
    Conversion,
    Ignored,
    ParseContext,
    ParsedEvent,
    PaymentKind,
    Reversal,
    ReversalKind,
)
from postback_relay.core.money import Money
from postback_relay.platforms.base import (
    MalformedEvent,
    base64_hmac,
    major_amount,
    named_value,
    require_base64_hmac,
    url_parameter,
)

SIGNATURE_HEADER = "X-WC-Webhook-Signature"
PING_BODY = re.compile(rb"webhook_id=[0-9]{1,20}")
PAID_STATUSES = frozenset({"processing", "completed"})
REVERSED_STATUSES: Mapping[str, ReversalKind] = {"refunded": "refunded", "cancelled": "cancelled"}
# WooCommerce's order attribution (8.5+) keeps the session's landing URL, query string included.
SESSION_ENTRY_KEY = "_wc_order_attribution_session_entry"
# WooCommerce Subscriptions marks the orders it creates with the subscription's id in these meta keys (the keys
# it never copies from a subscription to its orders): a renewal, a switch (an upgrade or downgrade, with its
# prorated charge), a resubscribe (a new purchase of an ended subscription). A parent order carries none of
# them and does not name its subscription, so it is a purchase like any order.
SUBSCRIPTION_ORDER_KINDS: Mapping[str, PaymentKind] = {
    "_subscription_renewal": "cycle",
    "_subscription_switch": "change",
    "_subscription_resubscribe": "first",
}


class WooCommerceSource:
    """WooCommerce core webhooks on the order topics (API v3 payloads)."""

    name = "woocommerce"
    secret_field = "woocommerce_webhook_secret"  # noqa: S105 - the name of a field, not a secret
    demo_secret = "wc_local_demo_secret"  # noqa: S105 - the local run's demo value
    signature_carries_secret = False

    def is_ping(self, raw_body: bytes, headers: Mapping[str, str]) -> bool:
        """WooCommerce tests a new webhook's URL with an unsigned form POST `webhook_id=N` and keeps the
        webhook only if the answer is exactly 200. That request, and only that one, is recognised here."""
        return SIGNATURE_HEADER.lower() not in headers and PING_BODY.fullmatch(raw_body.strip()) is not None

    def verify(
        self, raw_body: bytes, headers: Mapping[str, str], secrets: Sequence[str], now: float, tolerance: int
    ) -> None:
        """Check the base64 HMAC-SHA256 of the raw body (WooCommerce signs no timestamp)."""
        require_base64_hmac(headers, SIGNATURE_HEADER, secrets, raw_body)

    def sign(self, body: bytes, secret: str, timestamp: int) -> dict[str, str]:
        """X-WC-Webhook-Signature: base64 HMAC-SHA256 of the body (no timestamp is signed). The creation ping
        (`webhook_id=N`) is sent unsigned, so it gets no header."""
        if PING_BODY.fullmatch(body.strip()):
            return {}
        return {SIGNATURE_HEADER: base64_hmac(secret, body)}

    def parse(self, payload: Any, context: ParseContext) -> ParsedEvent:
        """An order that reached processing or completed is a conversion; refunded or cancelled a reversal."""
        if not isinstance(payload, dict):
            raise MalformedEvent("a WooCommerce webhook body is a JSON object")
        status = payload.get("status")
        if "id" not in payload or status is None:
            # order.deleted sends only {"id": N}; action.* topics send {"action": …, "arg": …}.
            return Ignored("woocommerce", "not an order with a status")
        order_id = payload.get("id")
        if not isinstance(order_id, int) or isinstance(order_id, bool) or order_id <= 0:
            raise MalformedEvent("id must be a WooCommerce order id")
        if not isinstance(status, str):
            raise MalformedEvent("status must be a string")
        purchase_id = _purchase_id(order_id, payload.get("order_key"))
        event_id = f"order/{order_id}@{payload.get('date_modified_gmt') or ''}"
        event_type = f"order.{status}"
        if status in REVERSED_STATUSES:
            return Reversal("woocommerce", (purchase_id,), event_id, event_type, REVERSED_STATUSES[status])
        if status not in PAID_STATUSES:
            return Ignored(event_type, f"status is {status!r}, not processing or completed")
        key = context.click_id_metadata_key
        meta = payload.get("meta_data")
        click_id, raw_click_id = context.pick_click_id(
            [named_value(meta, key, "key"), url_parameter(named_value(meta, SESSION_ENTRY_KEY, "key"), key)]
        )
        number = payload.get("number")
        payment, subscription = _subscription_order(meta)
        return Conversion(
            source="woocommerce",
            purchase_id=purchase_id,
            event_id=event_id,
            event_type=event_type,
            click_id=click_id,
            raw_click_id=raw_click_id,
            amount=_total(payload),
            details={"order_number": number} if isinstance(number, str) and number else {},
            payment=payment,
            subscription=subscription,
            refunded=_refunded(payload),
        )


def _purchase_id(order_id: int, order_key: Any) -> str:
    """The order id, with its random `order_key` when present, so two shops' order 1234 never collide."""
    if isinstance(order_key, str) and order_key and len(order_key) <= 64:
        return f"{order_id}:{order_key}"
    return str(order_id)


def _subscription_order(meta: Any) -> tuple[PaymentKind, str | None]:
    """What WooCommerce Subscriptions made this order for, and the subscription's id; a plain order else."""
    for key, payment in SUBSCRIPTION_ORDER_KINDS.items():
        value = named_value(meta, key, "key")
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if isinstance(value, str) and value.isascii() and value.isdigit():
            return payment, value
    return "one_off", None


def _refunded(order: dict[str, Any]) -> Money | None:
    """What `refunds[]` (each `total` a negative decimal string) has returned of a paid order: a partial
    refund keeps the status processing or completed, so this list is the only sign of it."""
    refunds = order.get("refunds")
    if not isinstance(refunds, list) or not refunds:
        return None
    total = Decimal(0)
    for refund in refunds:
        amount = refund.get("total") if isinstance(refund, dict) else None
        try:
            total += abs(Decimal(str(amount)))
        except InvalidOperation:
            return None
    if not total.is_finite() or total == 0:
        return None
    return major_amount(str(total), order.get("currency"), "refunds[].total")


def _total(order: dict[str, Any]) -> Money | None:
    """`total` is a decimal string in major units, rounded as the shop's price-decimals setting says."""
    if order.get("total") is None and order.get("currency") is None:
        return None
    return major_amount(order.get("total"), order.get("currency"), "total")


WOOCOMMERCE = WooCommerceSource()
