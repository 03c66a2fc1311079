"""Segpay TransPost postbacks: the URL template the merchant pastes, which events count, where the click id and
the amount are, and what stands in for the signature Segpay does not make.

What this relies on:
- Segpay's help pages. Manage Postbacks
  (https://gethelp.segpay.com/docs/Content/MPDocs/MyWebsites/ManagePostbacks.htm and
  https://gethelp.segpay.com/docs/Content/DeveloperDocs/ProcessingAPI/06-Postbacks.htm): a TransPost is
  "triggered by any transaction (payment, refund, void, chargeback)", up to four per website, asynchronous, and
  judged by the HTTP status code; each postback has a URL and an Expected Response (a text such as `OK`). The
  FAQs (https://gethelp.segpay.com/docs/Content/FAQs/Home-FAQs.htm): the relay must answer exactly that text
  with HTTP 200; failures are emailed. Postback Parameters
  (https://gethelp.segpay.com/docs/Content/DeveloperDocs/ProcessingAPI/07-PostbackParameters.htm): the URL is a
  template whose `<macro>` tokens Segpay fills in: `<action>`, `<stage>` (`Initial`, `Conversion`, `Rebill`,
  `Instantconversion`…), `<approved>` (`Yes`/`No`), `<trantype>`, `<purchaseid>` (the subscription or purchase),
  `<tranid>` (the transaction), `<relatedtranid>` (the transaction a refund or chargeback reverses), `<price>`,
  `<currencycode>` and `<extra NAME>` (a parameter the merchant added to the payment-page link).

The merchant pastes this URL (the names here are the ones read):
`…/webhooks/segpay?token=…&action=<action>&stage=<stage>&approved=<approved>&trantype=<trantype>
&purchaseid=<purchaseid>&tranid=<tranid>&relatedtranid=<relatedtranid>&price=<price>&currencycode=<currencycode>
&click_id=<extra click_id>`.

UNCONFIRMED in Segpay's documentation, so kept in the constants below to be corrected against a real postback:
- the HTTP method (a second-hand PHP controller reads `$_POST`; the macros are in the URL): GET and POST are
  both accepted, the query's and the form body's parameters read as one list;
- the `<trantype>` words of a refund and a chargeback (`credit`/`refund`, `chargeback`) and the `<action>` of a
  void (`void`); whether `<price>` is in major units (assumed, as Segpay's examples show `29.95`);
- whether `<extra click_id>` is repeated on rebills and reversals: the sale's click id is remembered under its
  `purchaseid`, so a rebill finds it;
- whether anything is signed (nothing in the pages read) and from which addresses Segpay posts (none published).

So a Segpay URL is accepted only with its token (`segpay_webhook_token`) and from the addresses the operator sets
(`SEGPAY_ALLOWED_IPS`, or `any`): with none set every request is refused. Identity is the transaction (`tranid`),
so a redelivery is a duplicate; the initial sale is also recorded under its `purchaseid`, so a reversal naming
only the purchase finds it. Values are compared case-insensitively."""

from __future__ import annotations

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
from postback_relay.core.inbound import ConflictingField, InboundRequest
from postback_relay.core.money import Money
from postback_relay.platforms.base import MalformedEvent, major_amount
from postback_relay.platforms.checks import Check, UrlToken, with_token

# UNCONFIRMED words (see the module's docstring): the `<trantype>` of a reversal and the `<action>` of a void.
REVERSAL_TRANTYPES: Mapping[str, ReversalKind] = {
    "credit": "refunded",
    "refund": "refunded",
    "chargeback": "charged_back",
}
VOID_ACTIONS: Mapping[str, ReversalKind] = {"void": "cancelled"}
APPROVED = "yes"
# `<stage>`: the initial sale is the purchase; a conversion (the first rebill after a trial), a rebill or an
# instant conversion is a renewal.
PAYMENTS: Mapping[str, PaymentKind] = {
    "initial": "first",
    "conversion": "cycle",
    "rebill": "cycle",
    "instantconversion": "cycle",
}
MAX_ID = 64


class SegpaySource:
    """Segpay TransPost postbacks, by GET or POST (the URL template's macros in the query or the form body)."""

    name = "segpay"
    secret_field = "segpay_webhook_token"  # noqa: S105 - the name of a field, not a secret
    demo_secret = "segpay-local-demo-token"  # noqa: S105 - the local run's demo value
    signature_carries_secret = True  # the token is the secret: added to a request only when it is sent
    checks: tuple[Check, ...] = (UrlToken("segpay_webhook_token"),)
    methods: frozenset[str] = frozenset({"GET", "POST"})  # Segpay's method is unconfirmed: both are accepted
    published_ips: tuple[str, ...] = ()  # none published: SEGPAY_ALLOWED_IPS must be set (or `any`)
    signs_content = False
    success_text: str | None = "OK"  # the Expected Response; the settings' SEGPAY_EXPECTED_RESPONSE overrides it

    def payload(self, request: InboundRequest) -> dict[str, str]:
        """The query's parameters then the form body's, without the token; a name sent twice with different
        values is malformed."""
        try:
            return request.fields()
        except ConflictingField as exc:
            raise MalformedEvent(str(exc)) from None

    def sign_query(self, raw_query: str, secret: str) -> str:
        """The query with the token Segpay's URL carries."""
        return with_token(raw_query, secret)

    def parse(self, payload: Any, context: ParseContext) -> ParsedEvent:
        """An approved initial sale is a purchase, an approved conversion or rebill a renewal, a credit,
        chargeback or void a reversal of the transaction it names; declines and every other event are ignored."""
        if not isinstance(payload, dict):
            raise MalformedEvent("a Segpay postback is a set of parameters")
        action = _word(payload, "action")
        stage = _word(payload, "stage")
        trantype = _word(payload, "trantype")
        purchase = _id(payload, "purchaseid")
        transaction = _id(payload, "tranid")
        event_id = f"{action}:{stage}:{transaction}"
        event_type = f"segpay.{action}.{stage}"
        kind = REVERSAL_TRANTYPES.get(trantype) or VOID_ACTIONS.get(action)
        if kind is not None:
            related = _id(payload, "relatedtranid") if str(payload.get("relatedtranid") or "").strip() else ""
            return Reversal(
                self.name, (related,) if related else (purchase,), event_id, event_type, kind, _money(payload, False)
            )
        if _word(payload, "approved") != APPROVED:
            return Ignored(event_type, "declined (approved is not Yes)")
        payment = PAYMENTS.get(stage)
        if payment is None:
            return Ignored(event_type, f"{action} {stage} is not a sale, a rebill or a reversal")
        click_id, raw_click_id = context.pick_click_id([payload.get(context.click_id_metadata_key)])
        return Conversion(
            source=self.name,
            purchase_id=transaction,
            event_id=event_id,
            event_type=event_type,
            click_id=click_id,
            raw_click_id=raw_click_id,
            amount=_money(payload),
            payment=payment,
            subscription=purchase,
            aliases=(purchase,) if payment == "first" and purchase != transaction else (),
        )


def _word(payload: Mapping[str, str], name: str) -> str:
    return str(payload.get(name) or "").strip().lower()


def _id(payload: Mapping[str, str], name: str) -> str:
    value = str(payload.get(name) or "").strip()
    if not value or len(value) > MAX_ID or not value.isascii() or not value.isalnum():
        raise MalformedEvent(f"{name} must be Segpay's id (letters and digits)")
    return value


def _money(payload: Mapping[str, str], required: bool = True) -> Money | None:
    """`<price>` in `<currencycode>`, major units (UNCONFIRMED); a reversal's is optional."""
    if not required and (not payload.get("price") or not payload.get("currencycode")):
        return None
    try:
        return major_amount(payload.get("price"), payload.get("currencycode"), "price")
    except MalformedEvent:
        if required:
            raise
        return None


SEGPAY = SegpaySource()
