"""Trackers and CPA networks (Keitaro, Binom, Voluum, RedTrack, affiliate networks): the S2S postback they
fire as a GET, `/postback?click_id=…&value=…&currency=…&lead_code=…&kind=…&status=…&token=…`.

Such postbacks carry no signature: the sender proves itself with the token (the secret's `postback_token`),
as the `token` parameter or the `X-Postback-Token` header, compared in constant time. What the relay reads
is the raw query string (API Gateway's comma-joined parameters are ambiguous), and an ambiguous query is
refused: a parameter given twice, or `click_id` and `clickid` with different values. Identity is the click and
the lead code, so a tracker firing the same postback again is one conversion; without a lead code one is
derived from the click, kind, value and currency (two equal sales on one click then count once: pass the
tracker's transaction id as `lead_code` to count each).

`status` is an allow-list, because every tracker has its own words and a new one must never count as a sale:
- no status, or one of POSTBACK_APPROVED_STATUSES (default `approved,approve,confirmed,sale,rebill,completed,
  paid,1`), is a conversion. Keitaro's statuses are `lead` ("payout is not confirmed"), `sale` ("payout is
  confirmed"), `rejected` ("payout is cancelled") and `rebill` (an upsell), `status` defaulting to `sale`
  (https://docs.keitaro.io/en/conversions/postback.html); RedTrack has "pending", "approved" (paid),
  "declined" (not paid) and "other" (https://help.redtrack.io/knowledgebase/kb/conversion-tracking/
  conditional-postback/); Binom's `cnv_status` is free text, "signup, checkout, approve, reject etc"
  (https://docs.binom.org/postback-url.php); Affise's system values are 1 Approved, 2 Pending, 3 Declined,
  5 Hold (https://help-center.affise.com/en/articles/4103329-statistics-conversion-statuses); Voluum's
  postback (`cid`, `payout`, `txid`, `et`) has no status at all (https://doc.voluum.com/en/
  tracking_conversions_postback.html). `lead` is not approved by default (Keitaro's unconfirmed payout): add
  it to the setting where a lead goal is paid on registration.
- a reversal word (conversion.REVERSAL_STATUSES: refunded/refund, chargeback, and reversed, rejected, declined,
  cancelled, trash, fraud as a cancellation) is a `Reversal` of the conversion the same postback without the
  status would have been: it names the same lead code (or, without one, the same kind, value and currency).
  Keitaro moves both a lead and a sale to `rejected`: a sale the relay sent is marked, while a lead it never
  counted has no record, and the reversal is answered `ignored` with nothing stored.
- any other status (`lead`, `pending`, `hold`, Affise's `2`, …) is answered 200 `ignored`, nothing stored."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl

from postback_relay.core.conversion import (
    GOAL_KINDS,
    REVERSAL_STATUSES,
    Conversion,
    Ignored,
    ParseContext,
    ParsedEvent,
    Reversal,
)
from postback_relay.core.inbound import TOKEN_PARAMETER
from postback_relay.core.money import Money
from postback_relay.platforms.base import MalformedEvent, SignatureError, SignatureMismatch, major_amount, matches_token

TOKEN_HEADER = "X-Postback-Token"  # noqa: S105
CLICK_ID_PARAMETERS = ("click_id", "clickid")
LEAD_CODE = re.compile(r"[!-~]{1,100}")  # printable ASCII without spaces
MAX_KEPT_CLICK_ID = 64
MAX_ECHOED_STATUS = 50


class TrackerSource:
    """The generic S2S postback (GET with query parameters) of trackers and affiliate networks."""

    name = "tracker"
    secret_field = "postback_token"  # noqa: S105 - the name of a field, not a secret
    demo_secret = "local-demo-postback-token"  # noqa: S105 - the local run's demo value
    signature_carries_secret = True  # the header is the token itself

    def verify(
        self, raw_body: bytes, headers: Mapping[str, str], secrets: Sequence[str], now: float, tolerance: int
    ) -> None:
        """``raw_body`` is the raw query string. Some token given (parameter or header) must be the secret's."""
        query = raw_body.decode("utf-8", "replace")
        tokens = [value for name, value in parse_qsl(query, keep_blank_values=True) if name == TOKEN_PARAMETER]
        header = headers.get(TOKEN_HEADER.lower())
        if header:
            tokens.append(header)
        tokens = [token for token in tokens if token]
        if not tokens:
            raise SignatureError("missing token (the token parameter or the X-Postback-Token header)")
        if not matches_token(secrets, tokens):
            raise SignatureMismatch("the postback token does not match the configured token")

    def sign(self, body: bytes, secret: str, timestamp: int) -> dict[str, str]:
        """X-Postback-Token: the token itself. Trackers have no signature; this header is the secret, so it is
        added only to requests being sent and never written into an event file."""
        return {TOKEN_HEADER: secret}

    def parse(self, payload: Any, context: ParseContext) -> ParsedEvent:
        """``payload`` is the query as ``parse_qsl`` pairs. An approved postback with a click id is a
        conversion of its kind (purchase by default, renewal or lead), a reversal word a reversal of that
        conversion; any other status and an empty click id (an organic conversion) are ignored."""
        params = _single_values(payload)
        raw = _click_id(params)
        status = params.get("status", "").strip().lower()
        reversal = REVERSAL_STATUSES.get(status)
        if reversal is None and status and status not in context.postback_approved_statuses:
            # The sender's own word, shortened: it is echoed in the answer and the log line.
            return Ignored("postback", f"status is {status[:MAX_ECHOED_STATUS]!r}, not an approved conversion")
        if not raw:
            return Ignored("postback", "the click id is empty: nothing to attribute")
        kind = params.get("kind", "purchase").strip().lower() or "purchase"
        goal = next((g for g in GOAL_KINDS if g == kind), None)
        if goal is None:
            raise MalformedEvent(f"kind must be one of {', '.join(GOAL_KINDS)}")
        amount = _amount(params, context)
        given_lead_code = params.get("lead_code", "").strip() or None
        if given_lead_code is not None and not LEAD_CODE.fullmatch(given_lead_code):
            raise MalformedEvent("lead_code must be 1 to 100 printable characters without spaces")
        click_id, raw_click_id = context.pick_click_id([raw])
        click_part = click_id or raw[:MAX_KEPT_CLICK_ID]
        if given_lead_code is not None:
            purchase_id = f"{click_part}:{given_lead_code}"
        else:
            facts = "\n".join([goal, format(amount.amount, "f") if amount else "", amount.currency if amount else ""])
            purchase_id = f"{click_part}:{hashlib.sha256(facts.encode()).hexdigest()[:16]}"
        event_id = f"postback:{_fingerprint(params)}"
        if reversal is not None:
            # The identity the conversion was stored under (the status is no part of it), so the store finds it.
            return Reversal(
                self.name, (purchase_id,), event_id, f"postback.{status}", reversal, amount, tombstone=False
            )
        return Conversion(
            source=self.name,
            purchase_id=purchase_id,
            event_id=event_id,
            event_type=f"postback.{goal}",
            click_id=click_id,
            raw_click_id=raw_click_id,
            amount=amount,
            goal=goal,
            lead_code=given_lead_code,
            payment="postback",
        )


def _click_id(params: dict[str, str]) -> str:
    """The click id, from `click_id` or its alias `clickid`; both given with different values is ambiguous and
    refused (guessing would credit the wrong click). Empty when given empty; missing altogether is malformed."""
    present = [params[name].strip() for name in CLICK_ID_PARAMETERS if name in params]
    if not present:
        raise MalformedEvent("the postback needs a click_id parameter")
    given = [value for value in present if value]
    if len({value.lower() for value in given}) > 1:
        raise MalformedEvent("click_id and clickid are both given, with different values")
    return given[0] if given else ""


def _single_values(payload: Any) -> dict[str, str]:
    """The parameters by name, without the token; a repeated parameter is ambiguous and refused."""
    if not isinstance(payload, list):
        raise MalformedEvent("a postback is a query string")
    params: dict[str, str] = {}
    for name, value in payload:
        if name == TOKEN_PARAMETER:
            continue
        if name in params:
            raise MalformedEvent(f"the parameter {name!r} is given more than once")
        params[name] = value
    return params


def _amount(params: dict[str, str], context: ParseContext) -> Money | None:
    """`value` in major units of `currency` (default: the account currency); none when not given."""
    value = params.get("value", "").strip()
    if not value:
        return None
    currency = params.get("currency", "").strip() or context.account_currency
    return major_amount(value, currency, "value")


def _fingerprint(params: dict[str, str]) -> str:
    """A short digest of what was sent (the token is never part of it): one id per distinct postback."""
    canonical = "&".join(f"{name}={value}" for name, value in sorted(params.items()))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


TRACKER = TrackerSource()
