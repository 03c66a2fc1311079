"""Shopify: `X-Shopify-Hmac-Sha256` verification, which orders are conversions, and where the click id is.

Shopify signs only the body (the bare REST resource, no envelope); the topic travels in an unsigned header.
So what an event means is read from the signed body alone: an order whose `financial_status` is `paid`
is a conversion (`orders/paid`, and `orders/create` of an order paid at once, are one conversion: identity
is the order), a refund object reverses its order, a cancelled order reverses it too, and a Shopify Payments
dispute (`disputes/create`, `disputes/update`) marks its order as charged back, or notes that it was won."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from postback_relay.core.conversion import (
    Conversion,
    Ignored,
    ParseContext,
    ParsedEvent,
    Reversal,
    ReversalKind,
)
from postback_relay.core.money import Money
from postback_relay.core.tenant import SHOPIFY_SHOP
from postback_relay.platforms.base import (
    MalformedEvent,
    SignatureError,
    base64_hmac,
    major_amount,
    named_value,
    require_base64_hmac,
    url_parameter,
)

SIGNATURE_HEADER = "X-Shopify-Hmac-Sha256"
# The newer "Events" delivery sends the same headers without the X- prefix.
SIGNATURE_HEADER_ALIASES = ("Shopify-Hmac-Sha256",)
REVERSED_STATUSES: Mapping[str, ReversalKind] = {"refunded": "refunded", "partially_refunded": "partially_refunded"}
# Shopify Payments disputes (`disputes/create`, `disputes/update`; the Dispute resource of the Admin API, fixture
# shopify_python_api test/fixtures/dispute.json): `type` chargeback or inquiry; `status` needs_response,
# under_review, charge_refunded, accepted, won, lost. An inquiry asks questions and moves no money: ignored.
DISPUTE_TYPES = ("chargeback", "inquiry")
DISPUTE_STATUSES: Mapping[str, ReversalKind] = {
    "needs_response": "charged_back",
    "under_review": "charged_back",
    "charge_refunded": "charged_back",
    "accepted": "dispute_lost",
    "lost": "dispute_lost",
    "won": "dispute_won",
}


class ShopifySource:
    """Shopify webhooks (app or admin-created), orders and refunds topics."""

    name = "shopify"
    secret_field = "shopify_webhook_secret"  # noqa: S105 - the name of a field, not a secret
    demo_secret = "shpss_local_demo_secret"  # noqa: S105 - the local run's demo value
    signature_carries_secret = False

    def verify(
        self, raw_body: bytes, headers: Mapping[str, str], secrets: Sequence[str], now: float, tolerance: int
    ) -> None:
        """Check the base64 HMAC-SHA256 of the raw body. Shopify signs no timestamp, so there is no window;
        a replayed delivery is a duplicate of its order and changes nothing."""
        if not raw_body:
            raise SignatureError("an empty body cannot be a Shopify webhook")
        require_base64_hmac(headers, SIGNATURE_HEADER, secrets, raw_body, SIGNATURE_HEADER_ALIASES)

    def sign(self, body: bytes, secret: str, timestamp: int) -> dict[str, str]:
        """X-Shopify-Hmac-Sha256: base64 HMAC-SHA256 of the body (no timestamp is signed)."""
        return {SIGNATURE_HEADER: base64_hmac(secret, body)}

    def parse(self, payload: Any, context: ParseContext) -> ParsedEvent:
        """A paid order is a conversion; a refund, a refunded or a cancelled order a reversal; the rest ignored."""
        if not isinstance(payload, dict):
            raise MalformedEvent("a Shopify webhook body is a JSON object")
        if "order_id" in payload and ("refund_line_items" in payload or "transactions" in payload):
            return _refund(payload)
        if "order_id" in payload and payload.get("type") in DISPUTE_TYPES and "status" in payload:
            return _dispute(payload)
        if "financial_status" not in payload:
            return Ignored("shopify", "neither an order nor a refund")
        order_id = _order_id(payload.get("id"), "id")
        status = payload.get("financial_status")
        event_id = f"order/{order_id}@{payload.get('updated_at') or payload.get('created_at') or ''}"
        if payload.get("cancelled_at"):  # its totals by then say what is left, not what was reversed
            return Reversal("shopify", (order_id,), event_id, "order.cancelled", "cancelled")
        if isinstance(status, str) and status in REVERSED_STATUSES:
            return Reversal("shopify", (order_id,), event_id, f"order.{status}", REVERSED_STATUSES[status])
        if status != "paid":
            return Ignored("order", f"financial_status is {status!r}, not paid")
        key = context.click_id_metadata_key
        click_id, raw_click_id = context.pick_click_id(
            [named_value(payload.get("note_attributes"), key), url_parameter(payload.get("landing_site"), key)]
        )
        name = payload.get("name")
        return Conversion(
            source="shopify",
            purchase_id=order_id,
            event_id=event_id,
            event_type="order.paid",
            click_id=click_id,
            raw_click_id=raw_click_id,
            amount=_total(payload),
            livemode=payload.get("test") is not True,
            details={"order_name": name} if isinstance(name, str) and name else {},
        )


def _order_id(value: Any, field: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return str(value)
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return value
    raise MalformedEvent(f"{field} must be a Shopify order id")


def _total(order: dict[str, Any]) -> Money | None:
    """What the order comes to after edits and refunds (`current_total_price`), in the shop's currency."""
    amount = order.get("current_total_price", order.get("total_price"))
    if amount is None and order.get("currency") is None:
        return None
    return major_amount(amount, order.get("currency"), "current_total_price")


def _refund(refund: dict[str, Any]) -> ParsedEvent:
    """`refunds/create`. The refund does not say whether it covers the whole order, so it is noted as a
    partial refund (the order's status is kept); a cancellation or `financial_status: refunded` marks it."""
    order_id = _order_id(refund.get("order_id"), "order_id")
    transactions = refund.get("transactions")
    amount: Money | None = None
    if isinstance(transactions, list):
        refunded = [
            t
            for t in transactions
            if isinstance(t, dict) and t.get("kind") == "refund" and t.get("status") == "success"
        ]
        if not refunded:
            return Ignored("refund", "no money was returned (a restock or a failed refund)")
        amount = _sum(refunded)
    event_id = f"refund/{refund.get('id')}"
    return Reversal("shopify", (order_id,), event_id, "refund", "partially_refunded", amount)


def _dispute(dispute: dict[str, Any]) -> ParsedEvent:
    """A Shopify Payments dispute: a chargeback marks its order (opened, lost), a won one is noted."""
    if dispute.get("type") != "chargeback":
        return Ignored("dispute", "an inquiry is not a chargeback")
    if dispute.get("order_id") is None:
        return Ignored("dispute", "the dispute names no order")
    order_id = _order_id(dispute.get("order_id"), "order_id")
    status = str(dispute.get("status"))
    kind = DISPUTE_STATUSES.get(status)
    if kind is None:
        return Ignored("dispute", f"dispute status is {status!r}")
    amount: Money | None = None
    try:
        amount = major_amount(dispute.get("amount"), dispute.get("currency"), "amount")
    except MalformedEvent:
        amount = None  # the chargeback is recorded either way
    event_id = f"dispute/{dispute.get('id')}@{status}"
    return Reversal("shopify", (order_id,), event_id, f"dispute.{status}", kind, amount)


def _sum(transactions: list[dict[str, Any]]) -> Money | None:
    """What the refund returned, when it can be told (one currency, readable amounts); the reversal is
    recorded either way, since refusing it would only make Shopify retry and then drop the subscription."""
    try:
        amounts = [major_amount(t.get("amount"), t.get("currency"), "transactions[].amount") for t in transactions]
    except MalformedEvent:
        return None
    if len({money.currency for money in amounts}) != 1:
        return None
    return Money(sum((money.amount for money in amounts), Decimal(0)), amounts[0].currency)


class ShopifyAppSource(ShopifySource):
    """One Shopify app installed on many shops: every shop's webhooks are signed with the app's client
    secret and name their shop in X-Shopify-Shop-Domain (shopify.dev, "Deliver webhooks through HTTPS":
    the headers Shopify sends), which is how the tenant is found."""

    secret_field = "shopify_app_secret"  # noqa: S105 - the name of a field, not a secret
    lookup = SHOPIFY_SHOP

    def tenant_key(self, payload: Any, headers: Mapping[str, str]) -> str | None:
        shop = headers.get("x-shopify-shop-domain")
        return shop.strip().lower() if isinstance(shop, str) and shop.strip() else None


SHOPIFY = ShopifySource()
SHOPIFY_APP = ShopifyAppSource()
