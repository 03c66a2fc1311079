"""Epoch: the approval postback (FlexPost / ePostback) after a join, and DataPlus, the lifecycle feed (rebills,
credits, chargebacks); which events count, where the click id and the amount are, and what stands in for the
signature this relay cannot check.

What this relies on (second-hand sources only: Epoch's own documentation is not public):
- aMember's Epoch plugin: the approval postback's fields, `ans` (starting with `Y` approved, `N` declined;
  `YGOODTEST` a test transaction), `transaction_id`, `member_id`, `order_id`, `amount`, `localamount`,
  `currency`, `epoch_digest`, and every `x_*` parameter of the join link echoed back (it sets `x_payment_id`
  and reads it back); DataPlus's `ets_transaction_type` codes: `C` credit (refund), `D` chargeback, `F` free
  trial, `I` initial recurring, `J` denied trial conversion, `K` cancelled trial, `N` non-initial recurring (a
  rebill), `O` non-recurring (a one-time sale), `T` paid trial, `U` trial conversion, `X` returned check; and
  Epoch's source ranges, 208.236.105.0/24 and 65.17.248.0/24, hard-coded there and possibly out of date (Epoch
  publishes its list at https://epoch.com/ip_list.php: check it before relying on these defaults).
- "Epoch.com Data Plus.pdf" (posted at https://mage2.pro/t/topic/5044): DataPlus's fields, `ets_transaction_id`,
  `ets_member_idx`, `ets_transaction_type`, `ets_transaction_amount`, `ets_ref_trans_ids` among them, delivered
  as an HTTPS name/value POST about 15 minutes behind.

Unconfirmed: that the approval postback is a form POST (it is read here from the query and a form body alike);
that `ets_transaction_amount` is in USD major units; that DataPlus carries no `x_*` field (so a rebill finds its
click id through the subscription, `ets_member_idx`, as the approval's `member_id`); that `ets_ref_trans_ids`
names the reversed transaction first; Epoch's retries. `epoch_digest` is a digest over the postback with the
merchant's secret, but its algorithm is not public: it is NOT verified here. So an Epoch URL is accepted only
with its token (`epoch_webhook_token`) and from Epoch's ranges (`EPOCH_ALLOWED_IPS`).

A purchase is identified by its transaction (`transaction_id`, the same as DataPlus's `ets_transaction_id` for
the initial sale, whose DataPlus row is then a duplicate of the approval postback), with the member as an alias,
so a redelivery is a duplicate and a reversal naming either finds it. `ans=YGOODTEST` is a test transaction:
recorded as such, never forwarded."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from postback_relay.core.conversion import (
    Conversion,
    Ignored,
    ParseContext,
    ParsedEvent,
    Reversal,
    ReversalKind,
)
from postback_relay.core.inbound import ConflictingField, InboundRequest
from postback_relay.core.money import Money
from postback_relay.platforms.base import MalformedEvent, major_amount
from postback_relay.platforms.checks import Check, UrlToken, with_token

PUBLISHED_IPS = ("208.236.105.0/24", "65.17.248.0/24")  # aMember's list, possibly out of date (ip_list.php)
PASS_THROUGH_PREFIX = "x_"  # noqa: S105 - a field-name prefix; the join link's custom parameters, echoed back on the approval postback
TEST_ANSWER = "YGOODTEST"
USD = "USD"
# DataPlus transaction types (aMember's codes).
REBILL = "N"  # non-initial recurring
INITIAL = frozenset({"I", "O", "T", "U"})  # initial recurring, non-recurring, paid trial, trial conversion
REVERSALS: Mapping[str, ReversalKind] = {
    "C": "refunded",  # credit
    "D": "charged_back",  # chargeback
    "X": "charged_back",  # returned check: the money came back as with a chargeback
}
MAX_ID = 64


class EpochSource:
    """Epoch's approval postback and DataPlus, as name/value pairs in the query or a form body."""

    name = "epoch"
    secret_field = "epoch_webhook_token"  # noqa: S105 - the name of a field, not a secret
    demo_secret = "epoch-local-demo-token"  # noqa: S105 - the local run's demo value
    signature_carries_secret = True  # the token is the secret: added to a request only when it is sent
    checks: tuple[Check, ...] = (UrlToken("epoch_webhook_token"),)
    methods: frozenset[str] = frozenset({"POST"})
    published_ips: tuple[str, ...] = PUBLISHED_IPS
    signs_content = False
    success_text: str | None = None

    def payload(self, request: InboundRequest) -> dict[str, str]:
        """The query's pairs then the form's, without the token; MalformedEvent for a field sent twice with
        different values or for no fields at all."""
        try:
            fields = request.fields()
        except ConflictingField as exc:
            raise MalformedEvent(str(exc)) from None
        if not fields:
            raise MalformedEvent("an Epoch postback is a set of name/value fields")
        return fields

    def sign_query(self, raw_query: str, secret: str) -> str:
        """The query with the token Epoch's URL carries."""
        return with_token(raw_query, secret)

    def parse(self, payload: Any, context: ParseContext) -> ParsedEvent:
        """An approved join is a purchase, a DataPlus rebill a renewal, a DataPlus initial sale the approval's
        purchase again, a credit, chargeback or returned check a reversal; declines and the rest are ignored."""
        if not isinstance(payload, dict):
            raise MalformedEvent("an Epoch postback is a set of fields")
        if payload.get("ans"):
            return self._approval(payload, context)
        if payload.get("ets_transaction_type"):
            return self._dataplus(payload)
        raise MalformedEvent("neither ans (an approval postback) nor ets_transaction_type (DataPlus) is sent")

    def _approval(self, payload: Mapping[str, str], context: ParseContext) -> ParsedEvent:
        answer = payload["ans"].strip().upper()
        # A decline is ignored before its ids are read: whether Epoch sends a declined join's ids is unconfirmed.
        if answer.startswith("N"):
            return Ignored("epoch.approval", "a declined join (ans starts with N)")
        if not answer.startswith("Y"):
            return Ignored("epoch.approval", "ans is neither an approval (Y…) nor a decline (N…)")
        transaction = _id(payload, "transaction_id")
        member = _id(payload, "member_id")
        if payload.get("localamount") and payload.get("currency"):
            amount = major_amount(payload.get("localamount"), payload.get("currency"), "localamount")
        else:
            amount = major_amount(payload.get("amount"), USD, "amount")
        key = context.click_id_metadata_key
        click_id, raw_click_id = context.pick_click_id([payload.get(PASS_THROUGH_PREFIX + key)])
        return Conversion(
            source=self.name,
            purchase_id=transaction,
            event_id=f"approval:{transaction}",
            event_type="epoch.approval",
            click_id=click_id,
            raw_click_id=raw_click_id,
            amount=amount,
            livemode=answer != TEST_ANSWER,
            payment="first",
            subscription=member,
            aliases=(member,),
        )

    def _dataplus(self, payload: Mapping[str, str]) -> ParsedEvent:
        kind = payload["ets_transaction_type"].strip().upper()
        transaction = _id(payload, "ets_transaction_id")
        member = _id(payload, "ets_member_idx")
        event_id, event_type = f"dataplus:{kind}:{transaction}", f"epoch.dataplus.{kind}"
        if kind in REVERSALS:
            amount = _usd(payload, required=False)
            return Reversal(self.name, (_reversed(payload, member),), event_id, event_type, REVERSALS[kind], amount)
        if kind != REBILL and kind not in INITIAL:
            return Ignored(event_type, f"DataPlus type {kind!r} is not a payment or a reversal")
        return Conversion(
            source=self.name,
            purchase_id=transaction,
            event_id=event_id,
            event_type=event_type,
            click_id=None,
            amount=_usd(payload),
            payment="cycle" if kind == REBILL else "first",
            subscription=member,
        )


def _reversed(payload: Mapping[str, str], member: str) -> str:
    """The transaction a DataPlus credit or chargeback reverses: the first of `ets_ref_trans_ids`, else the
    member (an alias of the approval's purchase)."""
    for candidate in str(payload.get("ets_ref_trans_ids") or "").split(","):
        value = candidate.strip()
        if value:
            if len(value) > MAX_ID or not value.isascii() or not value.isalnum():
                raise MalformedEvent("ets_ref_trans_ids must be Epoch's transaction ids")
            return value
    return member


def _usd(payload: Mapping[str, str], required: bool = True) -> Money | None:
    if not required and not payload.get("ets_transaction_amount"):
        return None
    try:
        return major_amount(payload.get("ets_transaction_amount"), USD, "ets_transaction_amount")
    except MalformedEvent:
        if required:
            raise
        return None


def _id(payload: Mapping[str, str], name: str) -> str:
    value = str(payload.get(name) or "").strip()
    if not value or len(value) > MAX_ID or not value.isascii() or not value.isalnum():
        raise MalformedEvent(f"{name} must be Epoch's id (ASCII letters and digits)")
    return value


EPOCH = EpochSource()
