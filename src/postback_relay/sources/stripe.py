"""Stripe: `Stripe-Signature` verification, which events are conversions, and where the click id is.

Identity is the underlying payment: a Checkout Session, its PaymentIntent and an invoice paid through it
all name the same purchase, so the events Stripe fires for one purchase become one conversion."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from postback_relay.conversion import Conversion, Ignored, ParsedEvent, Reversal, ReversalKind, pick_click_id
from postback_relay.money import STRIPE_EXPONENTS, Money, from_minor_units
from postback_relay.settings import Settings
from postback_relay.sources.base import (
    MalformedEvent,
    SignatureMismatch,
    dig,
    matches_hex,
    timestamped_signatures,
)

CHECKOUT_EVENTS = ("checkout.session.completed", "checkout.session.async_payment_succeeded")


class StripeSource:
    """Stripe webhooks (API versions before and after 2025-03-31 "basil")."""

    name = "stripe"
    secret_field = "stripe_webhook_secret"  # noqa: S105 - the name of a field, not a secret

    def verify(
        self, raw_body: bytes, headers: Mapping[str, str], secrets: Sequence[str], now: float, tolerance: int
    ) -> None:
        """Check `t=…,v1=…[,v1=…]`: HMAC-SHA256 hex of "{t}.{raw body}", any v1 under any secret,
        and |now - t| within the tolerance (both ways: Stripe's SDK only rejects old timestamps)."""
        header = headers.get("stripe-signature")
        timestamp, signatures = timestamped_signatures(header, "Stripe-Signature", ",", "t", "v1", now, tolerance)
        if not matches_hex(secrets, timestamp.encode("ascii") + b"." + raw_body, signatures):
            raise SignatureMismatch("no Stripe-Signature v1 matches the configured secret")

    def parse(self, payload: Any, settings: Settings) -> ParsedEvent:
        """Map a Stripe event to a conversion (paid Checkout, invoice, PaymentIntent), a reversal or ignored."""
        event_id, event_type, obj = _envelope(payload)
        livemode = payload.get("livemode") is not False
        key = settings.click_id_metadata_key
        if event_type in CHECKOUT_EVENTS:
            if obj.get("payment_status") != "paid":
                return Ignored(event_type, f"payment_status is {obj.get('payment_status')!r}, not paid")
            purchase = _id(obj.get("payment_intent")) or _id(obj.get("invoice")) or _required_id(obj)
            candidates = [dig(obj, "metadata", key), obj.get("client_reference_id")]
            return _conversion(event_id, event_type, purchase, candidates, obj, "amount_total", livemode)
        if event_type == "invoice.paid":
            candidates = [
                dig(obj, "metadata", key),
                dig(obj, "parent", "subscription_details", "metadata", key),
                dig(obj, "subscription_details", "metadata", key),
            ]
            conversion = _conversion(event_id, event_type, _required_id(obj), candidates, obj, "amount_paid", livemode)
            reason = obj.get("billing_reason")
            if isinstance(reason, str):
                conversion.details["billing_reason"] = reason
            if reason == "subscription_cycle":  # a renewal, not the subscription's first payment
                conversion = replace(conversion, goal="renewal")
            return conversion
        if event_type == "payment_intent.succeeded":
            # Before 2025-03-31 a PaymentIntent that pays an invoice names it: then the invoice is the purchase.
            purchase = _id(obj.get("invoice")) or _required_id(obj)
            amount_field = "amount_received" if isinstance(obj.get("amount_received"), int) else "amount"
            candidates = [dig(obj, "metadata", key)]
            return _conversion(event_id, event_type, purchase, candidates, obj, amount_field, livemode)
        if event_type == "charge.refunded":
            kind: ReversalKind = "refunded" if obj.get("refunded") is True else "partially_refunded"
            return _reversal(event_id, event_type, kind, [obj.get("invoice"), obj.get("payment_intent")], obj)
        if event_type == "charge.dispute.created":
            return _reversal(event_id, event_type, "charged_back", [obj.get("payment_intent")], obj)
        return Ignored(event_type, "not a conversion event")


def _envelope(payload: Any) -> tuple[str, str, dict[str, Any]]:
    if not isinstance(payload, dict):
        raise MalformedEvent("a Stripe event is a JSON object")
    event_id, event_type, obj = payload.get("id"), payload.get("type"), dig(payload, "data", "object")
    if not isinstance(event_id, str) or not isinstance(event_type, str) or not isinstance(obj, dict):
        raise MalformedEvent("a Stripe event needs string id and type and an object at data.object")
    return event_id, event_type, obj


def _id(value: Any) -> str | None:
    """An id field, whether Stripe sent it as a string or as an expanded object."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def _required_id(obj: dict[str, Any]) -> str:
    object_id = _id(obj)
    if object_id is None:
        raise MalformedEvent("data.object has no id")
    return object_id


def _amount(obj: dict[str, Any], field: str) -> Money | None:
    amount, currency = obj.get(field), obj.get("currency")
    if amount is None and currency is None:
        return None
    if not isinstance(amount, int) or isinstance(amount, bool) or amount < 0:
        raise MalformedEvent(f"data.object.{field} must be a non-negative integer")
    if not isinstance(currency, str) or len(currency) != 3 or not currency.isalpha():
        raise MalformedEvent("data.object.currency must be a three-letter currency code")
    return from_minor_units(amount, currency, STRIPE_EXPONENTS)


def _conversion(
    event_id: str,
    event_type: str,
    purchase_id: str,
    candidates: list[Any],
    obj: dict[str, Any],
    amount_field: str,
    livemode: bool,
) -> Conversion:
    click_id, raw_click_id = pick_click_id(candidates)
    return Conversion(
        source="stripe",
        purchase_id=purchase_id,
        event_id=event_id,
        event_type=event_type,
        click_id=click_id,
        raw_click_id=raw_click_id,
        amount=_amount(obj, amount_field),
        livemode=livemode,
    )


def _reversal(
    event_id: str, event_type: str, kind: ReversalKind, purchase_fields: list[Any], obj: dict[str, Any]
) -> ParsedEvent:
    purchase_ids = tuple(dict.fromkeys(pid for pid in map(_id, purchase_fields) if pid))
    if not purchase_ids:
        return Ignored(event_type, "the reversal names no PaymentIntent or invoice")
    amount_field = "amount_refunded" if event_type == "charge.refunded" else "amount"
    return Reversal("stripe", purchase_ids, event_id, event_type, kind, _amount(obj, amount_field))


STRIPE = StripeSource()
