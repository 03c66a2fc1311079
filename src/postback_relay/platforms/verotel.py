"""Verotel FlexPay (and its brands CardBilling, BitsafePay): the postback, a GET whose query parameters are
signed (platforms/verotel_signature.py), which events count, where the click id and the amount are, and the
`OK` Verotel must get back.

What this relies on:
- verotel/flexpay-php-client (`src/Verotel/FlexPay/Client.php`, `examples/postback.php`): the postback is a GET;
  every parameter but `signature` is signed, `shopID` added when absent; the example validates `$_GET` and
  prints `OK`. Verotel's FlexPay documentation: "The Verotel system expects 'OK' response. For Credit Card
  payments - If no such response is received, an automatic refund is initiated." So the relay answers `OK`
  only once the event is durable (a store outage is a 503, which Verotel would treat as any failure), and a
  refusal (a bad signature) is never `OK`.
- The events of pipisco/laravel-verotel-flexpay (`Enums/Event.php`) and datinglibre's Verotel bundle tests: no
  `event` = a one-time purchase, `initial` = a subscription's first payment, `rebill`, `extend`, `upgrade`,
  `downgrade`, `cancel`, `uncancel`, `expiry`, `credit` (a refund) and `chargeback`; `saleID` (the sale or
  subscription), `transactionID` (the charge), `priceAmount`/`priceCurrency` (`amount` on a rebill), `custom1`–
  `custom3` (the merchant's pass-through, also on chargebacks).

Identity is the transaction (`transactionID`; the sale's `saleID` where a postback has none), so a redelivery is
a duplicate; the first payment is also recorded under its `saleID`, so a reversal naming only the sale finds it.
A credit or chargeback names the transaction it reverses (datinglibre's chargeback sample repeats the initial
payment's). `extend`, `upgrade` and `downgrade` are ignored: their amount fields are not confirmed. Verotel
publishes no source addresses that could be confirmed: the signature is the check (`VEROTEL_ALLOWED_IPS` may add
one)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from postback_relay.core.conversion import (
    Conversion,
    Ignored,
    ParseContext,
    ParsedEvent,
    PaymentKind,
    Reversal,
    ReversalKind,
)
from postback_relay.core.inbound import InboundRequest
from postback_relay.core.money import Money
from postback_relay.platforms import verotel_signature
from postback_relay.platforms.base import MalformedEvent, SignatureError, SignatureMismatch, major_amount
from postback_relay.platforms.checks import Check

SIGNATURE_PARAMETER = "signature"
PAYMENTS: Mapping[str, PaymentKind] = {"": "one_off", "purchase": "one_off", "initial": "first", "rebill": "cycle"}
REVERSALS: Mapping[str, ReversalKind] = {"credit": "refunded", "chargeback": "charged_back"}
CLICK_ID_FIELDS = ("custom1", "custom2", "custom3")
MAX_ID = 64


def _signed_params(request: InboundRequest) -> tuple[dict[str, str], str]:
    """The query's parameters as PHP's `$_GET` holds them (a repeated name: its last value) and the signature."""
    params = dict(request.query_pairs)
    return params, params.pop(SIGNATURE_PARAMETER, "")


@dataclass(frozen=True)
class VerotelSignature:
    """Verotel's signature over the sorted parameters, with the signature key of the secret."""

    field: str
    required: bool = True

    def verify(self, request: InboundRequest, values: Sequence[str], context: ParseContext) -> None:
        """The `signature` parameter must be the SHA-256 (or the older SHA-1) of the parameters under a key."""
        params, signature = _signed_params(request)
        if not signature:
            raise SignatureError("missing signature parameter")
        if not verotel_signature.matches(values, params, signature, context.verotel_shop_id):
            raise SignatureMismatch("the signature does not match the configured Verotel signature key")


class VerotelSource:
    """Verotel FlexPay postbacks (one-time purchases and subscriptions)."""

    name = "verotel"
    secret_field = "verotel_signature_key"  # noqa: S105 - the name of a field, not a secret
    demo_secret = "verotel-local-demo-signature-key"  # noqa: S105 - the local run's demo value
    signature_carries_secret = False  # a signature, not the key: a signed event file may be written
    checks: tuple[Check, ...] = (VerotelSignature("verotel_signature_key"),)
    methods: frozenset[str] = frozenset({"GET"})
    published_ips: tuple[str, ...] = ()
    signs_content = True
    success_text: str | None = "OK"

    def payload(self, request: InboundRequest) -> dict[str, str]:
        """The signed parameters (all but the signature)."""
        params, _ = _signed_params(request)
        if not params:
            raise MalformedEvent("a Verotel postback carries its parameters in the query string")
        return params

    def sign_query(self, raw_query: str, secret: str) -> str:
        """The query with the signature Verotel computes over it (any previous one replaced)."""
        params = dict(InboundRequest("GET", raw_query, b"").query_pairs)
        params.pop(SIGNATURE_PARAMETER, None)
        return urlencode({**params, SIGNATURE_PARAMETER: verotel_signature.sign(secret, params)})

    def parse(self, payload: Any, context: ParseContext) -> ParsedEvent:
        """A purchase or a subscription's first payment is a purchase, a rebill a renewal, a credit or a
        chargeback a reversal of the transaction (or sale) it names; every other event is ignored."""
        if not isinstance(payload, dict):
            raise MalformedEvent("a Verotel postback is a set of parameters")
        event = str(payload.get("event") or "").strip().lower()
        sale = _id(payload, "saleID")
        transaction = _id(payload, "transactionID", required=False)
        event_type = f"verotel.{event or 'purchase'}"
        event_id = f"{event or 'purchase'}:{transaction or sale}"
        if event in REVERSALS:
            ids = (transaction, sale) if transaction else (sale,)
            amount = _amount(payload, required=False)
            return Reversal(self.name, ids[:1], event_id, event_type, REVERSALS[event], amount)
        payment = PAYMENTS.get(event)
        if payment is None:
            return Ignored(event_type, f"{event} is not a purchase, a rebill, a credit or a chargeback")
        purchase = transaction or sale
        click_id, raw_click_id = context.pick_click_id([payload.get(name) for name in CLICK_ID_FIELDS])
        return Conversion(
            source=self.name,
            purchase_id=purchase,
            event_id=event_id,
            event_type=event_type,
            click_id=click_id,
            raw_click_id=raw_click_id,
            amount=_amount(payload),
            details={"sale_id": sale},
            payment=payment,
            subscription=sale if payment in ("first", "cycle") else None,
            aliases=(sale,) if payment != "cycle" and sale != purchase else (),
        )


def _id(payload: Mapping[str, str], name: str, required: bool = True) -> str:
    value = str(payload.get(name) or "").strip()
    if not value and not required:
        return ""
    if not value or len(value) > MAX_ID or not value.isascii() or not value.isalnum():
        raise MalformedEvent(f"{name} must be Verotel's id")
    return value


def _amount(payload: Mapping[str, str], required: bool = True) -> Money | None:
    """`priceAmount` in `priceCurrency` (a rebill's `amount`), major units."""
    amount = payload.get("priceAmount") or payload.get("amount")
    currency = payload.get("priceCurrency") or payload.get("currency")
    if not required and (not amount or not currency):
        return None
    return major_amount(amount, currency, "priceAmount")


VEROTEL = VerotelSource()
