"""Lemon Squeezy: `X-Signature` verification, which events are conversions, and where the click id is.

A first subscription payment fires both `order_created` and `subscription_payment_success` (billing reason
`initial`): the order is the conversion and the initial invoice is ignored, so only renewals count from
subscription invoices. Orders and subscription invoices are numbered separately, so their identities carry
the type. Lemon Squeezy retries anything but exactly 200, which every processed or ignored event gets.

Value in another currency: orders and subscription invoices carry, next to `total` (cents of the order's
`currency`), `total_usd`: the same total in USD cents, at the `currency_rate` that is "the currency conversion
rate used to determine the cost of the order in USD at the time of purchase" (the Order object,
https://docs.lemonsqueezy.com/api/orders; the Subscription Invoice object's sample carries `total_usd` too,
https://docs.lemonsqueezy.com/api/subscription-invoices/retrieve-subscription-invoice). It is passed on as the
platform's own conversion: `FX_RATES` still decides first, and only a currency it does not list takes Lemon
Squeezy's USD figure (as is when ACCOUNT_CURRENCY is USD, or through FX_RATES' USD rate
otherwise), so a EUR order is sent with its value instead of none."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from postback_relay.core.conversion import (
    Conversion,
    GoalKind,
    Ignored,
    Link,
    ParseContext,
    ParsedEvent,
    PaymentKind,
    Reversal,
    ReversalKind,
)
from postback_relay.core.money import Money
from postback_relay.platforms.base import (
    MalformedEvent,
    dig,
    hex_hmac,
    minor_amount,
    require_hex_hmac,
)

SIGNATURE_HEADER = "X-Signature"
# A subscription invoice's billing_reason (the Subscription Invoice object,
# https://docs.lemonsqueezy.com/api/subscription-invoices): `initial` is the first payment, counted by its
# order_created; `renewal` a later cycle (after a trial, the first paid one); `updated` a plan change's charge.
INVOICE_REASONS: dict[str, PaymentKind] = {"renewal": "cycle", "updated": "change"}
REFUND_EVENTS = {"order_refunded": "orders", "subscription_payment_refunded": "subscription-invoices"}


class LemonSqueezySource:
    """Lemon Squeezy store webhooks (JSON:API bodies)."""

    name = "lemonsqueezy"
    secret_field = "lemonsqueezy_webhook_secret"  # noqa: S105 - the name of a field, not a secret
    demo_secret = "ls_local_demo_secret"  # noqa: S105 - the local run's demo value
    signature_carries_secret = False

    def verify(
        self, raw_body: bytes, headers: Mapping[str, str], secrets: Sequence[str], now: float, tolerance: int
    ) -> None:
        """Check the hex HMAC-SHA256 of the raw body (Lemon Squeezy signs no timestamp)."""
        require_hex_hmac(headers, SIGNATURE_HEADER, secrets, raw_body)

    def sign(self, body: bytes, secret: str, timestamp: int) -> dict[str, str]:
        """X-Signature: hex HMAC-SHA256 of the body (no timestamp is signed)."""
        return {SIGNATURE_HEADER: hex_hmac(secret, body)}

    def parse(self, payload: Any, context: ParseContext) -> ParsedEvent:
        """A paid order or a renewal payment is a conversion; a refund of either a reversal."""
        event_name, meta, data_type, data_id, attributes = _envelope(payload)
        if event_name == "order_created":
            _expect_type(data_type, "orders")
            return self._conversion(event_name, meta, data_type, data_id, attributes, context, "purchase")
        if event_name == "subscription_payment_success":
            _expect_type(data_type, "subscription-invoices")
            reason = attributes.get("billing_reason")
            payment = INVOICE_REASONS.get(str(reason))
            if payment is None:
                return Ignored(event_name, f"billing_reason is {reason!r}: the first payment is its order")
            conversion = self._conversion(event_name, meta, data_type, data_id, attributes, context, "renewal")
            subscription = _digits(attributes.get("subscription_id"))
            if isinstance(conversion, Conversion):
                return replace(conversion, payment=payment, subscription=subscription)
            return conversion
        if event_name == "subscription_created":
            _expect_type(data_type, "subscriptions")
            return self._subscription(event_name, meta, data_id, attributes, context)
        if event_name in REFUND_EVENTS:
            _expect_type(data_type, REFUND_EVENTS[event_name])
            kind: ReversalKind = "partially_refunded" if attributes.get("status") == "partial_refund" else "refunded"
            amount = _money(attributes, "refunded_amount")
            event_id = f"{event_name}:{data_type}/{data_id}@{attributes.get('refunded_at') or ''}"
            return Reversal(self.name, (f"{data_type}/{data_id}",), event_id, event_name, kind, amount)
        return Ignored(event_name, "not a conversion event")

    def _conversion(
        self,
        event_name: str,
        meta: dict[str, Any],
        data_type: str,
        data_id: str,
        attributes: dict[str, Any],
        context: ParseContext,
        goal: GoalKind,
    ) -> ParsedEvent:
        if attributes.get("status") != "paid":
            return Ignored(event_name, f"status is {attributes.get('status')!r}, not paid")
        click_id, raw_click_id, livemode = _click_and_livemode(meta, attributes, context)
        return Conversion(
            source=self.name,
            purchase_id=f"{data_type}/{data_id}",
            event_id=f"{event_name}:{data_type}/{data_id}",
            event_type=event_name,
            click_id=click_id,
            raw_click_id=raw_click_id,
            amount=_money(attributes, "total"),
            livemode=livemode,
            goal=goal,
            platform_converted=_usd(attributes, "total_usd"),
        )

    def _subscription(
        self, event_name: str, meta: dict[str, Any], data_id: str, attributes: dict[str, Any], context: ParseContext
    ) -> ParsedEvent:
        """`subscription_created`, sent beside the first order: on a trial it is the trial starting (the order
        is $0); otherwise it says the order is the subscription's first paid payment, so its renewals, which
        may lack the custom data, are attributed and counted as renewals."""
        click_id, raw_click_id, livemode = _click_and_livemode(meta, attributes, context)
        if attributes.get("status") == "on_trial":
            return Conversion(
                source=self.name,
                purchase_id=f"subscriptions/{data_id}:trial",
                event_id=f"{event_name}:subscriptions/{data_id}",
                event_type=event_name,
                click_id=click_id,
                raw_click_id=raw_click_id,
                amount=None,
                livemode=livemode,
                payment="trial_start",
                subscription=data_id,
            )
        order = _digits(attributes.get("order_id"))
        if order is None and click_id is None:
            return Ignored(event_name, "a subscription naming neither its order nor a click id")
        first_paid = f"orders/{order}" if order else None
        return Link(
            self.name, f"{event_name}:subscriptions/{data_id}", event_name, None, (), data_id, click_id, first_paid
        )


def _click_and_livemode(
    meta: dict[str, Any], attributes: dict[str, Any], context: ParseContext
) -> tuple[str | None, str | None, bool]:
    """The click id (valid, and raw) from `meta.custom_data`, and whether the event is live (not test mode)."""
    click_id, raw_click_id = context.pick_click_id([dig(meta, "custom_data", context.click_id_metadata_key)])
    test_mode = meta.get("test_mode") is True or attributes.get("test_mode") is True
    return click_id, raw_click_id, not test_mode


def _digits(value: Any) -> str | None:
    """A Lemon Squeezy id (an integer, or its digits as a string), as a string; None otherwise."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return str(value)
    return value if isinstance(value, str) and value.isascii() and value.isdigit() else None


def _envelope(payload: Any) -> tuple[str, dict[str, Any], str, str, dict[str, Any]]:
    if not isinstance(payload, dict):
        raise MalformedEvent("a Lemon Squeezy webhook body is a JSON object")
    meta, data = payload.get("meta"), payload.get("data")
    event_name = dig(meta, "event_name")
    if not isinstance(meta, dict) or not isinstance(event_name, str) or not isinstance(data, dict):
        raise MalformedEvent("a Lemon Squeezy webhook needs meta.event_name and an object at data")
    data_type, data_id, attributes = data.get("type"), data.get("id"), data.get("attributes")
    if isinstance(data_id, int) and not isinstance(data_id, bool):
        data_id = str(data_id)
    if not isinstance(data_id, str) or not data_id.isascii() or not data_id.isdigit():
        raise MalformedEvent("data.id must be a Lemon Squeezy id (digits)")
    if not isinstance(data_type, str) or not isinstance(attributes, dict):
        raise MalformedEvent("data needs a type and an attributes object")
    return event_name, meta, data_type, data_id, attributes


def _expect_type(data_type: str, expected: str) -> None:
    if data_type != expected:
        raise MalformedEvent(f"data.type is {data_type!r}, expected {expected!r}")


def _money(attributes: dict[str, Any], field: str) -> Money | None:
    """Lemon Squeezy amounts are integers in the currency's minor unit ("cents")."""
    if attributes.get(field) is None and attributes.get("currency") is None:
        return None
    return minor_amount(attributes.get(field), attributes.get("currency"), f"data.attributes.{field}")


def _usd(attributes: dict[str, Any], field: str) -> Money | None:
    """Lemon Squeezy's own USD figure of an amount, in cents; None when the event does not carry it."""
    if attributes.get(field) is None:
        return None
    return minor_amount(attributes.get(field), "USD", f"data.attributes.{field}")


LEMONSQUEEZY = LemonSqueezySource()
