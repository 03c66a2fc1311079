"""CCBill Webhooks: which events count, where the click id and the amount are, and what stands in for the
signature CCBill does not make.

What this relies on:
- CCBill's Webhooks guide (https://ccbill.com/doc/webhooks-user-guide, https://ccbill.com/doc/webhooks-overview):
  a POST per event, JSON or "URL Encoded" as chosen per URL, with `clientAccnum`, `clientSubacc`, `eventType` and
  `eventGroupType` appended to the URL's query string; up to four URLs per subaccount; CCBill posts from
  64.38.212.0/24, 64.38.215.0/24, 64.38.240.0/24 and 64.38.241.0/24 (the guide's 1–254 ranges), which merchants
  are asked to allow. Nothing is signed.
- The field names and sample bodies of DmytroVasin/ccbill_ruby (`responses/reccuring_new_sale_success.json`,
  `responses/chargeback.json`, `lib/ccbill_ruby/postback.rb`) and datinglibre/ccbill's mappers: NewSaleSuccess
  carries `billedInitialPrice`/`billedCurrency`, `accountingInitialPrice`/`accountingCurrency`,
  `subscriptionId`, `transactionId` (equal to `subscriptionId` on the initial sale) and every pass-through field
  as `X-<name>`; RenewalSuccess `billedAmount`/`billedCurrency` and `accountingAmount`; Refund, Chargeback and
  Void `amount`/`currency` and the `transactionId` they reverse (the chargeback sample names the initial sale's).
- `dynamicPricingValidationDigest` = md5(subscriptionId + "1" + salt) on a successful dynamic-pricing sale
  (ccbill_ruby's `verified?` and its spec); the salt is the subaccount's, set with CCBill support.

So a CCBill URL is accepted only with its token (`ccbill_webhook_token`) and from CCBill's ranges
(`CCBILL_ALLOWED_IPS`), and, when `ccbill_digest_salt` is configured, a sale's digest must match it.

The value is the billed amount in the billed currency: what the customer paid, as every other platform
reports it, converted by FX_RATES like any other; CCBill's accounting amount (its own conversion into the
merchant's settlement currency) is the fallback when FX_RATES has no rate for the billed currency. CCBill sends
no notification id: a sale is identified by its transaction (the subscription id on the initial sale), so a
redelivery is a duplicate. CCBill marks no test transaction in Webhooks that the sources read show, so none is
recognised here."""

from __future__ import annotations

import json
from collections.abc import Mapping
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
from postback_relay.core.inbound import InboundRequest
from postback_relay.core.money import Money
from postback_relay.platforms.base import MalformedEvent, major_amount
from postback_relay.platforms.checks import Check, FieldDigest, UrlToken, md5_hex, with_token

PUBLISHED_IPS = ("64.38.212.0/24", "64.38.215.0/24", "64.38.240.0/24", "64.38.241.0/24")
DIGEST_FIELD = "dynamicPricingValidationDigest"
PASS_THROUGH_PREFIX = "X-"  # noqa: S105 - a field-name prefix
# A sale's event types: the subscription (or one-time purchase) it starts is its purchase.
SALES = frozenset({"NewSaleSuccess", "UpSaleSuccess", "CrossSaleSuccess"})
RENEWAL = "RenewalSuccess"
REVERSALS: Mapping[str, ReversalKind] = {
    "Refund": "refunded",
    "Chargeback": "charged_back",
    "Void": "cancelled",
    "Return": "charged_back",  # a returned check or ACH debit: the money came back as with a chargeback
}
MAX_ID = 64


def _digest(request: InboundRequest, salt: str) -> tuple[str, str] | None:
    """(sent, expected) for a successful sale that carries the digest; None for every other request."""
    fields = _fields(request)
    sent, subscription = fields.get(DIGEST_FIELD), fields.get("subscriptionId")
    if fields.get("eventType") not in SALES or not sent or not subscription:
        return None
    return sent, md5_hex(f"{subscription}1{salt}")


class CCBillSource:
    """CCBill Webhooks, in either data format (JSON or URL Encoded)."""

    name = "ccbill"
    secret_field = "ccbill_webhook_token"  # noqa: S105 - the name of a field, not a secret
    demo_secret = "ccbill-local-demo-token"  # noqa: S105 - the local run's demo value
    signature_carries_secret = True  # the token is the secret: added to a request only when it is sent
    checks: tuple[Check, ...] = (
        UrlToken("ccbill_webhook_token"),
        FieldDigest("ccbill_digest_salt", DIGEST_FIELD, _digest),
    )
    methods: frozenset[str] = frozenset({"POST"})
    published_ips: tuple[str, ...] = PUBLISHED_IPS
    signs_content = False
    success_text: str | None = None

    def payload(self, request: InboundRequest) -> dict[str, str]:
        """The body's fields with the query's (`eventType` and the account come in the query)."""
        return _fields(request, strict=True)

    def sign_query(self, raw_query: str, secret: str) -> str:
        """The query with the token CCBill's URL carries."""
        return with_token(raw_query, secret)

    def parse(self, payload: Any, context: ParseContext) -> ParsedEvent:
        """A successful sale is a purchase, a renewal a renewal, a refund, chargeback, void or return a reversal
        of the transaction it names; declines and every other event are ignored."""
        if not isinstance(payload, dict):
            raise MalformedEvent("a CCBill webhook is a set of fields")
        event_type = payload.get("eventType")
        if not event_type:
            raise MalformedEvent("eventType is missing (CCBill adds it to the URL's query string)")
        transaction = _id(payload, "transactionId")
        event_id = f"{event_type}:{transaction}"
        if event_type in REVERSALS:
            amount = _money(payload, "amount", "currency")
            return Reversal(self.name, (transaction,), event_id, f"ccbill.{event_type}", REVERSALS[event_type], amount)
        if event_type not in SALES and event_type != RENEWAL:
            return Ignored(f"ccbill.{event_type}", f"{event_type} is not a sale, a renewal or a reversal")
        subscription = _id(payload, "subscriptionId")
        payment: PaymentKind
        if event_type == RENEWAL:
            payment, purchase = "cycle", transaction
            amount = _money(payload, "billedAmount", "billedCurrency")
            converted = _money(payload, "accountingAmount", "accountingCurrency", required=False)
        else:
            # The initial sale's transaction is its subscription (CCBill's sample): a reversal naming either finds it.
            payment, purchase = "first", subscription
            amount = _money(payload, "billedInitialPrice", "billedCurrency")
            converted = _money(payload, "accountingInitialPrice", "accountingCurrency", required=False)
        key = context.click_id_metadata_key
        click_id, raw_click_id = context.pick_click_id([payload.get(PASS_THROUGH_PREFIX + key), payload.get(key)])
        account = "/".join(value for value in (payload.get("clientAccnum"), payload.get("clientSubacc")) if value)
        return Conversion(
            source=self.name,
            purchase_id=purchase,
            event_id=event_id,
            event_type=f"ccbill.{event_type}",
            click_id=click_id,
            raw_click_id=raw_click_id,
            amount=amount,
            details={"account": account} if account else {},
            platform_converted=converted,
            payment=payment,
            subscription=subscription,
        )


def _fields(request: InboundRequest, strict: bool = False) -> dict[str, str]:
    """The request's fields: the JSON object or form of the body, then the query's (which CCBill appends to the
    URL and which win). With ``strict``, MalformedEvent for a body of neither shape or a field sent twice."""
    fields: dict[str, str] = {}
    body = request.body.strip()
    if request.is_form:
        pairs: list[tuple[str, str]] = list(request.form_pairs)
    elif body:
        try:
            document = json.loads(body)
        except (ValueError, RecursionError):
            document = None
        if not isinstance(document, dict):
            if strict:
                raise MalformedEvent("a CCBill webhook body is a JSON object or URL-encoded fields")
            document = {}
        pairs = [
            (str(name), value if isinstance(value, str) else json.dumps(value)) for name, value in document.items()
        ]
    else:
        pairs = []
    for name, value in pairs:
        if strict and name in fields and fields[name] != value:
            raise MalformedEvent(f"the field {name!r} is sent twice with different values")
        fields[name] = value
    for name, value in request.query_pairs:
        if name != "token":
            fields[name] = value
    return fields


def _id(payload: Mapping[str, str], name: str) -> str:
    value = str(payload.get(name) or "").strip()
    if not value or len(value) > MAX_ID or not value.isascii() or not value.isalnum():
        raise MalformedEvent(f"{name} must be CCBill's id (digits)")
    return value


def _money(payload: Mapping[str, str], amount: str, currency: str, required: bool = True) -> Money | None:
    if not required and (not payload.get(amount) or not payload.get(currency)):
        return None
    try:
        return major_amount(payload.get(amount), payload.get(currency), amount)
    except MalformedEvent:
        if required:
            raise
        return None


CCBILL = CCBillSource()
