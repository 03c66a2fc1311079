"""Paddle Billing: `Paddle-Signature` verification, which events are conversions, and where the click id is.

Identity is the transaction: a replayed notification (new `notification_id`, same `event_id`) and a retry
of the same event are one conversion. Sandbox is a separate Paddle account with its own notification
destination and secret and nothing in the payload that says "sandbox", so it has its own route and secret
(`paddle-sandbox`, `paddle_sandbox_webhook_secret`): its purchases are test-mode."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
    SignatureMismatch,
    dig,
    hex_hmac,
    matches_hex,
    minor_amount,
    timestamped_signatures,
)

SIGNATURE_HEADER = "paddle-signature"
# A transaction's `origin` (paddle-python-sdk Entities/Shared/TransactionOrigin.py) → the payment's moment.
# `web`/`api` start a subscription when the transaction names one; `subscription_charge` is a one-time charge
# added to a subscription, counted like an upgrade; a payment-method change is a $0 authorization.
ORIGINS: dict[str, PaymentKind] = {
    "subscription_recurring": "cycle",
    "subscription_update": "change",
    "subscription_charge": "change",
    "subscription_payment_method_change": "payment_method_change",
}
# Adjustment actions (Entities/Shared/Action.py): a chargeback reversed is a dispute the merchant won;
# `chargeback_warning` (an early fraud warning) and credits move no money back to the buyer.
ADJUSTMENT_KINDS: dict[str, ReversalKind] = {"chargeback": "charged_back", "chargeback_reverse": "dispute_won"}


class PaddleSource:
    """Paddle Billing notifications (API version 1), live or sandbox."""

    signature_carries_secret = False

    def __init__(self, name: str, secret_field: str, demo_secret: str, livemode: bool) -> None:
        self.name = name
        self.secret_field = secret_field
        self.demo_secret = demo_secret
        self.livemode = livemode

    def verify(
        self, raw_body: bytes, headers: Mapping[str, str], secrets: Sequence[str], now: float, tolerance: int
    ) -> None:
        """Check `ts=…;h1=…[;h1=…]`: hex HMAC-SHA256 of "{ts}:{raw body}", any h1 under any secret (Paddle
        sends several while a secret is rotated), and |now - ts| within the tolerance. Paddle's SDK allows 5 s,
        less than a cold start plus clock skew; the relay's SIGNATURE_TOLERANCE_SECONDS applies instead."""
        header = headers.get(SIGNATURE_HEADER)
        timestamp, signatures = timestamped_signatures(header, "Paddle-Signature", ";", "ts", "h1", now, tolerance)
        if not matches_hex(secrets, _signed_payload(timestamp, raw_body), signatures):
            raise SignatureMismatch("no Paddle-Signature h1 matches the configured secret")

    def sign(self, body: bytes, secret: str, timestamp: int) -> dict[str, str]:
        """Paddle-Signature: ts={timestamp};h1={hex HMAC-SHA256 of "{timestamp}:{body}"}."""
        return {"Paddle-Signature": f"ts={timestamp};h1={hex_hmac(secret, _signed_payload(str(timestamp), body))}"}

    def parse(self, payload: Any, context: ParseContext) -> ParsedEvent:
        """`transaction.completed` is a conversion (a renewal when the subscription billed it); an approved
        refund or chargeback adjustment is a reversal of its transaction; everything else is ignored."""
        event_id, event_type, data = _envelope(payload)
        if event_type == "transaction.completed":
            return self._transaction(event_id, event_type, data, context)
        if event_type in ("adjustment.created", "adjustment.updated"):
            return self._adjustment(event_id, event_type, data)
        return Ignored(event_type, "not a conversion event")

    def _transaction(self, event_id: str, event_type: str, data: dict[str, Any], context: ParseContext) -> ParsedEvent:
        if data.get("status") != "completed":
            return Ignored(event_type, f"status is {data.get('status')!r}, not completed")
        custom_data = data.get("custom_data")
        click_id, raw_click_id = context.pick_click_id([dig(custom_data, context.click_id_metadata_key)])
        origin = data.get("origin")
        subscription = data.get("subscription_id")
        subscription = subscription if isinstance(subscription, str) and subscription.startswith("sub_") else None
        payment: PaymentKind = ORIGINS.get(str(origin), "first" if subscription else "one_off")
        if payment == "first" and dig(data, "details", "totals", "subtotal") == "0":
            payment = "trial_start"  # nothing to pay before any discount: the subscription starts with a trial
        return Conversion(
            source=self.name,
            purchase_id=_id(data, "txn_"),
            event_id=event_id,
            event_type=event_type,
            click_id=click_id,
            raw_click_id=raw_click_id,
            amount=_grand_total(data),
            livemode=self.livemode,
            details={"origin": origin} if isinstance(origin, str) and origin else {},
            payment=payment,
            subscription=subscription,
        )

    def _adjustment(self, event_id: str, event_type: str, data: dict[str, Any]) -> ParsedEvent:
        action, status = data.get("action"), data.get("status")
        if action != "refund" and action not in ADJUSTMENT_KINDS:
            return Ignored(event_type, f"action is {action!r}, not a refund, a chargeback or its reversal")
        if status != "approved":
            return Ignored(event_type, f"status is {status!r}, not approved")
        transaction = data.get("transaction_id")
        if not isinstance(transaction, str) or not transaction.startswith("txn_"):
            raise MalformedEvent("data.transaction_id must be a Paddle transaction id")
        totals = data.get("totals")
        amount: Money | None = None
        if isinstance(totals, dict):
            amount = minor_amount(totals.get("total"), totals.get("currency_code"), "data.totals.total")
        kind = ADJUSTMENT_KINDS.get(str(action), "refunded" if data.get("type") == "full" else "partially_refunded")
        return Reversal(self.name, (transaction,), event_id, event_type, kind, amount)


def _signed_payload(timestamp: str, body: bytes) -> bytes:
    """What Paddle's signature covers: the timestamp, a colon, and the raw body."""
    return timestamp.encode("ascii") + b":" + body


def _envelope(payload: Any) -> tuple[str, str, dict[str, Any]]:
    if not isinstance(payload, dict):
        raise MalformedEvent("a Paddle notification is a JSON object")
    event_id, event_type, data = payload.get("event_id"), payload.get("event_type"), payload.get("data")
    if not isinstance(event_id, str) or not isinstance(event_type, str) or not isinstance(data, dict):
        raise MalformedEvent("a Paddle notification needs string event_id and event_type and an object at data")
    return event_id, event_type, data


def _id(data: dict[str, Any], prefix: str) -> str:
    value = data.get("id")
    if not isinstance(value, str) or not value.startswith(prefix):
        raise MalformedEvent(f"data.id must be a Paddle id starting with {prefix}")
    return value


def _grand_total(data: dict[str, Any]) -> Money | None:
    """What the customer paid: `details.totals.grand_total`, a string in the currency's lowest denomination."""
    totals = dig(data, "details", "totals")
    if not isinstance(totals, dict):
        return None
    currency = totals.get("currency_code", data.get("currency_code"))
    return minor_amount(totals.get("grand_total"), currency, "data.details.totals.grand_total")


PADDLE = PaddleSource("paddle", "paddle_webhook_secret", "pdl_ntfset_local_demo_secret", livemode=True)
PADDLE_SANDBOX = PaddleSource(
    "paddle-sandbox", "paddle_sandbox_webhook_secret", "pdl_ntfset_local_demo_sandbox_secret", livemode=False
)
