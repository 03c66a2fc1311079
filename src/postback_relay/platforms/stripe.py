"""Stripe: `Stripe-Signature` verification, which events are conversions, and where the click id is.

Identity is the underlying payment: a Checkout Session, its PaymentIntent and an invoice paid through it
all name the same purchase, so the events Stripe fires for one purchase become one conversion.

Lifecycle (the README's table): `invoice.billing_reason` says which moment of a subscription an invoice is
(https://docs.stripe.com/api/invoices/object); a trial's session is `payment_status: no_payment_required` with
nothing to pay before discounts (`amount_subtotal` 0), a 100 %-off coupon's has a subtotal; a `mode: setup`
session saves a card. From API 2025-03-31 ("basil") an invoice names neither its PaymentIntent nor its charge,
and charges and PaymentIntents no longer name their invoice
(https://docs.stripe.com/changelog/basil/2025-03-31/add-support-for-multiple-partial-payments-on-invoices):
the InvoicePayment of `invoice_payment.paid` (https://docs.stripe.com/api/invoice-payment/object) is what
links them, so it becomes the aliases a refund or dispute naming the PaymentIntent is found by. Disputes:
`charge.dispute.created`, then `charge.dispute.closed` with `status` won or lost."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from postback_relay.core.conversion import (
    ZERO_VALUE,
    Conversion,
    Ignored,
    Link,
    ParseContext,
    ParsedEvent,
    PaymentKind,
    Reversal,
    ReversalKind,
)
from postback_relay.core.money import ISO_EXPONENTS, Money
from postback_relay.core.tenant import STRIPE_ACCOUNT
from postback_relay.platforms.base import (
    MalformedEvent,
    SignatureMismatch,
    dig,
    hex_hmac,
    matches_hex,
    minor_amount,
    timestamped_signatures,
)

# Stripe's own table (docs.stripe.com/currencies): MGA is zero-decimal at Stripe but 2 in ISO; ISK amounts are
# sent "with two decimals" although ISO gives it 0. Everything else follows ISO.
STRIPE_EXPONENTS: Mapping[str, int] = {**ISO_EXPONENTS, "MGA": 0, "ISK": 2}
CHECKOUT_EVENTS = ("checkout.session.completed", "checkout.session.async_payment_succeeded")
# invoice.billing_reason → the payment's moment (https://docs.stripe.com/api/invoices/object#invoice_object-
# billing_reason): `subscription_update` is a proration or upgrade; `subscription_threshold` a usage bill.
BILLING_REASONS: dict[str, PaymentKind] = {
    "subscription_create": "first",
    "subscription_cycle": "cycle",
    "subscription_threshold": "cycle",
    "subscription_update": "change",
}
DISPUTE_OUTCOMES: dict[str, ReversalKind] = {"won": "dispute_won", "lost": "dispute_lost"}


class StripeSource:
    """Stripe webhooks (API versions before and after 2025-03-31 "basil")."""

    name = "stripe"
    secret_field = "stripe_webhook_secret"  # noqa: S105 - the name of a field, not a secret
    demo_secret = "whsec_local_demo_secret"  # noqa: S105 - the local run's demo value
    signature_carries_secret = False

    def verify(
        self, raw_body: bytes, headers: Mapping[str, str], secrets: Sequence[str], now: float, tolerance: int
    ) -> None:
        """Check `t=…,v1=…[,v1=…]`: HMAC-SHA256 hex of "{t}.{raw body}", any v1 under any secret,
        and |now - t| within the tolerance (both ways: Stripe's SDK only rejects old timestamps)."""
        header = headers.get("stripe-signature")
        timestamp, signatures = timestamped_signatures(header, "Stripe-Signature", ",", "t", "v1", now, tolerance)
        if not matches_hex(secrets, _signed_payload(timestamp, raw_body), signatures):
            raise SignatureMismatch("no Stripe-Signature v1 matches the configured secret")

    def sign(self, body: bytes, secret: str, timestamp: int) -> dict[str, str]:
        """Stripe-Signature: t={timestamp},v1={hex HMAC-SHA256 of "{timestamp}.{body}"}."""
        return {"Stripe-Signature": f"t={timestamp},v1={hex_hmac(secret, _signed_payload(str(timestamp), body))}"}

    def parse(self, payload: Any, context: ParseContext) -> ParsedEvent:
        """Map a Stripe event to a payment (Checkout, invoice, PaymentIntent) of its lifecycle moment, a
        link (another id of an invoice's payment), a reversal, or ignored."""
        event_id, event_type, obj = _envelope(payload)
        livemode = payload.get("livemode") is not False
        key = context.click_id_metadata_key
        if event_type in CHECKOUT_EVENTS:
            return _checkout(event_id, event_type, obj, context, livemode)
        if event_type == "invoice.paid":
            return _invoice(event_id, event_type, obj, context, livemode)
        if event_type == "invoice_payment.paid":
            return _invoice_payment(event_id, event_type, obj)
        if event_type == "payment_intent.succeeded":
            invoice = _id(obj.get("invoice"))
            if invoice is not None:  # before 2025-03-31 a PaymentIntent names the invoice it pays: the invoice's
                # own events say what the payment is (first, cycle, upgrade); this one only adds its ids
                aliases = _ids(obj.get("id"), obj.get("latest_charge"))
                return Link("stripe", event_id, event_type, invoice, aliases)
            amount_field = "amount_received" if isinstance(obj.get("amount_received"), int) else "amount"
            click = context.pick_click_id([dig(obj, "metadata", key)])
            conversion = _conversion(event_id, event_type, _required_id(obj), click, obj, amount_field, livemode)
            return replace(conversion, aliases=_ids(obj.get("latest_charge")))  # a refund may name only the charge
        if event_type == "charge.refunded":
            kind: ReversalKind = "refunded" if obj.get("refunded") is True else "partially_refunded"
            ids = [obj.get("invoice"), obj.get("payment_intent"), obj.get("id")]
            return _reversal(event_id, event_type, kind, ids, obj)
        if event_type == "charge.dispute.created":
            return _reversal(event_id, event_type, "charged_back", [obj.get("payment_intent"), obj.get("charge")], obj)
        if event_type == "charge.dispute.closed":
            outcome = DISPUTE_OUTCOMES.get(str(obj.get("status")))
            if outcome is None:
                return Ignored(event_type, f"dispute status is {obj.get('status')!r}, neither won nor lost")
            return _reversal(event_id, event_type, outcome, [obj.get("payment_intent"), obj.get("charge")], obj)
        if event_type == "customer.subscription.deleted":
            return Ignored(event_type, "a cancelled subscription keeps its sale; its renewals stop coming")
        return Ignored(event_type, "not a conversion event")


def _signed_payload(timestamp: str, body: bytes) -> bytes:
    """What Stripe's signature covers: the timestamp, a dot, and the raw body."""
    return timestamp.encode("ascii") + b"." + body


def _checkout(
    event_id: str, event_type: str, obj: dict[str, Any], context: ParseContext, livemode: bool
) -> ParsedEvent:
    """A completed Checkout Session. Paid: the purchase (a subscription's first payment, whose invoice is
    the identity). No payment required: a trial starting (nothing to pay before any discount) or a $0
    order (a 100 %-off coupon): either way its click id is remembered for the subscription, since a
    Payment Link's `client_reference_id` is on this session only."""
    status = obj.get("payment_status")
    if obj.get("mode") == "setup":
        return Ignored(event_type, "a setup session saves a payment method: no sale")
    key = context.click_id_metadata_key
    click = context.pick_click_id([dig(obj, "metadata", key), obj.get("client_reference_id")])
    subscription = _id(obj.get("subscription")) if obj.get("mode") == "subscription" else None
    if status not in ("paid", "no_payment_required"):
        return Ignored(event_type, f"payment_status is {status!r}, not paid")
    if status == "no_payment_required" and subscription is not None:
        discounted = isinstance(obj.get("amount_subtotal"), int) and obj["amount_subtotal"] > 0
        if not discounted:
            conversion = _conversion(event_id, event_type, f"{subscription}:trial", click, obj, "", livemode)
            return replace(conversion, payment="trial_start", subscription=subscription)
    # nothing was paid without a PaymentIntent: then the subscription's first invoice, or the session itself
    purchase = _id(obj.get("payment_intent")) or _id(obj.get("invoice")) or _required_id(obj)
    conversion = _conversion(event_id, event_type, purchase, click, obj, "amount_total", livemode)
    if status == "no_payment_required" and conversion.amount is None:  # whatever the session leaves out
        return Ignored(event_type, ZERO_VALUE)
    return replace(conversion, payment="first" if subscription else "one_off", subscription=subscription)


def _invoice(event_id: str, event_type: str, obj: dict[str, Any], context: ParseContext, livemode: bool) -> ParsedEvent:
    """A paid invoice: its billing reason says which moment of the subscription it is; a $0 first invoice
    with nothing to pay before discounts is the trial starting. Before 2025-03-31 it names its PaymentIntent
    and charge, which become its aliases (later versions send `invoice_payment.paid` for that)."""
    key = context.click_id_metadata_key
    click = context.pick_click_id(
        [
            dig(obj, "metadata", key),
            dig(obj, "parent", "subscription_details", "metadata", key),
            dig(obj, "subscription_details", "metadata", key),
        ]
    )
    subscription = _id(dig(obj, "parent", "subscription_details", "subscription")) or _id(obj.get("subscription"))
    reason = obj.get("billing_reason")
    payment = BILLING_REASONS.get(str(reason), "cycle") if subscription else "one_off"
    trial = payment == "first" and obj.get("amount_paid") == 0 and obj.get("subtotal") in (0, None)
    purchase = f"{subscription}:trial" if trial else _required_id(obj)
    conversion = _conversion(event_id, event_type, purchase, click, obj, "" if trial else "amount_paid", livemode)
    details = {"billing_reason": reason} if isinstance(reason, str) else {}
    aliases = () if trial else _ids(obj.get("payment_intent"), obj.get("charge"))
    return replace(
        conversion,
        payment="trial_start" if trial else payment,
        subscription=subscription,
        aliases=aliases,
        details=details,
    )


def _invoice_payment(event_id: str, event_type: str, obj: dict[str, Any]) -> ParsedEvent:
    """An InvoicePayment (API 2025-03-31 and later): the only object that names both an invoice and the
    PaymentIntent (or charge) that paid it, so a refund or dispute naming the payment finds the invoice."""
    invoice = _id(obj.get("invoice"))
    payment = obj.get("payment")
    aliases = _ids(dig(payment, "payment_intent"), dig(payment, "charge")) if isinstance(payment, dict) else ()
    if invoice is None or not aliases or obj.get("status") != "paid":
        return Ignored(event_type, "not a paid invoice payment naming its invoice and payment")
    return Link("stripe", event_id, event_type, invoice, aliases)


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


def _ids(*values: Any) -> tuple[str, ...]:
    """The ids among ``values`` (strings or expanded objects), in order, without repeats."""
    return tuple(dict.fromkeys(found for found in map(_id, values) if found))


def _required_id(obj: dict[str, Any]) -> str:
    object_id = _id(obj)
    if object_id is None:
        raise MalformedEvent("data.object has no id")
    return object_id


def _amount(obj: dict[str, Any], field: str) -> Money | None:
    if not field:
        return None
    amount, currency = obj.get(field), obj.get("currency")
    if amount is None and currency is None:
        return None
    return minor_amount(amount, currency, f"data.object.{field}", STRIPE_EXPONENTS, integer_only=True)


def _conversion(
    event_id: str,
    event_type: str,
    purchase_id: str,
    click: tuple[str | None, str | None],
    obj: dict[str, Any],
    amount_field: str,
    livemode: bool,
) -> Conversion:
    click_id, raw_click_id = click
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
    purchase_ids = _ids(*purchase_fields)
    if not purchase_ids:
        return Ignored(event_type, "the reversal names no PaymentIntent, charge or invoice")
    amount_field = "amount_refunded" if event_type == "charge.refunded" else "amount"
    return Reversal("stripe", purchase_ids, event_id, event_type, kind, _amount(obj, amount_field))


class StripeConnectSource(StripeSource):
    """A Stripe Connect platform's endpoint (created with `connect: true`): every connected account's events,
    signed with that one endpoint's secret, each naming its account in `account` ("The connected account that
    originates the event", docs.stripe.com/connect/webhooks). Live and test events both arrive here; the
    event's `livemode` tells them apart as on any endpoint."""

    secret_field = "stripe_connect_webhook_secret"  # noqa: S105 - the name of a field, not a secret
    lookup = STRIPE_ACCOUNT

    def tenant_key(self, payload: Any, headers: Mapping[str, str]) -> str | None:
        account = payload.get("account") if isinstance(payload, dict) else None
        return account if isinstance(account, str) and account.startswith("acct_") else None


STRIPE = StripeSource()
STRIPE_CONNECT = StripeConnectSource()
