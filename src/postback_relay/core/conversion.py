"""The model every source maps into: a conversion to forward, a reversal to mark, or an event to ignore.

A conversion's identity is the platform's own id of the purchase (a PaymentIntent, an invoice, an order),
never the delivery or event id, so every delivery and every event type of one purchase is one conversion."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from postback_relay.core.money import Money
from postback_relay.core.tenant import DEFAULT_TENANT, scope

MAX_RECORDED_CLICK_ID = 200

ReversalKind = Literal["refunded", "partially_refunded", "charged_back", "cancelled", "dispute_won", "dispute_lost"]
# The status words trackers and CPA networks send when a conversion is taken back, and the reversal each is.
# `rejected`/`declined` are here, not among the ignored statuses: Keitaro documents both "lead to rejected" and
# "sale to rejected", RedTrack's `declined` covers "fraud, duplicate, or refund". A rejection of a sale the
# relay sent marks it; a rejection of a lead never approved finds no record and is answered `ignored`.
REVERSAL_STATUSES: Mapping[str, ReversalKind] = {
    **dict.fromkeys(["refunded", "refund"], "refunded"),
    **dict.fromkeys(["chargeback", "chargedback", "charged_back"], "charged_back"),
    **dict.fromkeys(
        ["reversed", "reversal", "rejected", "reject", "declined", "cancelled", "canceled", "cancel", "trash", "fraud"],
        "cancelled",
    ),
}
# Which TrafficStars goal a conversion counts towards (the query form's goalid is configured per kind).
GoalKind = Literal["purchase", "renewal", "lead"]
GOAL_KINDS: tuple[GoalKind, ...] = ("purchase", "renewal", "lead")
# Which moment of a purchase's lifecycle a payment is, as the platform tells it; `lifecycle.decide` says what
# each becomes (the README's table). `first` and `cycle` are a subscription's payments: the first paid one is
# its purchase, whatever the platform calls it (after a trial it is a cycle), so the relay decides that with
# the subscription's memory, not the source.
# `postback`: a tracker's or network's conversion, which says itself what it counts as (its `kind`), at any value.
PaymentKind = Literal["one_off", "first", "cycle", "change", "trial_start", "payment_method_change", "postback"]


Origin = Literal["webhook", "reconcile"]


@dataclass(frozen=True)
class Conversion:
    """A paid purchase, as reported by one event of one source."""

    source: str
    purchase_id: str
    event_id: str
    event_type: str
    click_id: str | None
    amount: Money | None
    raw_click_id: str | None = None
    livemode: bool = True
    details: dict[str, str] = field(default_factory=dict)
    goal: GoalKind = "purchase"
    lead_code: str | None = None  # the sender's own lead code (tracker postbacks); else derived from the identity
    # The platform's own conversion of ``amount`` (Lemon Squeezy's total_usd): the value when FX_RATES lacks a rate.
    platform_converted: Money | None = None
    payment: PaymentKind = "one_off"
    subscription: str | None = None  # the platform's subscription id, whose memory keeps the click id and first payment
    aliases: tuple[str, ...] = ()  # the purchase's other ids (its PaymentIntent, charge): a reversal may name any
    refunded: Money | None = None  # already partly refunded when delivered (a WooCommerce order's refunds[])
    tenant: str = DEFAULT_TENANT  # set by the relay serving the tenant; sources never know it
    origin: Origin = "webhook"  # how the relay learnt of it: its webhook, or a reconcile run (the platform's API)

    @property
    def scope(self) -> str:
        """The tenant's source: what every key of this purchase starts with (core/tenant.py)."""
        return scope(self.tenant, self.source)

    @property
    def identity(self) -> str:
        """The record key: tenant, source and purchase id, the same for every event of the purchase."""
        return f"{self.scope}#{self.purchase_id}"

    @property
    def alias_identities(self) -> tuple[str, ...]:
        return tuple(f"{self.scope}#{alias}" for alias in self.aliases if alias != self.purchase_id)


@dataclass(frozen=True)
class Reversal:
    """A refund or chargeback of a purchase. TrafficStars has no reversal call: it is only recorded."""

    source: str
    purchase_ids: tuple[str, ...]
    event_id: str
    event_type: str
    kind: ReversalKind
    amount: Money | None = None
    # Nothing recorded under these ids yet: record the reversal anyway, so the purchase, if its delivery comes
    # late (a platform's retry after an outage), is born reversed and never sent. Not for trackers, whose
    # reversal of a lead never approved must not stop a later approval of it.
    tombstone: bool = True
    tenant: str = DEFAULT_TENANT

    @property
    def identities(self) -> tuple[str, ...]:
        """The record keys the original conversion may be stored under, most specific first."""
        return tuple(f"{scope(self.tenant, self.source)}#{purchase_id}" for purchase_id in self.purchase_ids)


@dataclass(frozen=True)
class Link:
    """An event that is no payment but tells the relay something it will need later: another id of a purchase
    (Stripe's invoice_payment.paid names the PaymentIntent that paid an invoice), or a subscription's click id
    and first paid purchase (Lemon Squeezy's subscription_created). Remembered, nothing sent."""

    source: str
    event_id: str
    event_type: str
    purchase_id: str | None = None  # the purchase the aliases belong to
    aliases: tuple[str, ...] = ()
    subscription: str | None = None
    click_id: str | None = None
    first_paid: str | None = None  # the purchase id that is the subscription's first paid payment, when known
    tenant: str = DEFAULT_TENANT

    @property
    def scope(self) -> str:
        return scope(self.tenant, self.source)

    @property
    def identity(self) -> str | None:
        return f"{self.scope}#{self.purchase_id}" if self.purchase_id else None


class Ignored(NamedTuple):
    """An event that is not a conversion (another type, an unpaid session): answered 200, nothing stored."""

    event_type: str
    reason: str


ParsedEvent = Conversion | Reversal | Link | Ignored
# Why a $0 payment is no conversion, whether a source sees it (Stripe's $0 session) or the lifecycle decides it.
ZERO_VALUE = "a $0 payment is never a sale"

# Tracker postback statuses that count as a conversion (besides none at all) when POSTBACK_APPROVED_STATUSES is
# not set: Keitaro's `sale` (payout confirmed) and `rebill` (upsell), RedTrack's `approved`, Binom's usual
# `approve`, Affise's system value `1` (Approved), and the words CPA networks use for a paid conversion. See
# platforms/tracker.py for the sources and the other statuses.
DEFAULT_APPROVED_STATUSES = ("approved", "approve", "confirmed", "sale", "rebill", "completed", "paid", "1")


@dataclass(frozen=True)
class ParseContext:
    """The settings a source's ``parse`` reads, and only those: a platform module then needs neither the
    whole ``Settings`` (with its TrafficStars options) nor a table and a secret to be tested. The relay builds
    it once from its settings; the defaults are the settings' own. ``click_ids`` is the ad network's rule for
    a click id (networks/trafficstars.py), so no platform module knows which network it reports to."""

    click_ids: re.Pattern[str]  # a valid click id, case-folded, matches it whole
    click_id_metadata_key: str = "click_id"  # CLICK_ID_METADATA_KEY: where a platform's metadata keeps the click id
    account_currency: str = "USD"  # ACCOUNT_CURRENCY: a tracker postback's currency when it names none
    postback_approved_statuses: frozenset[str] = frozenset(DEFAULT_APPROVED_STATUSES)  # POSTBACK_APPROVED_STATUSES
    verotel_shop_id: str | None = None  # VEROTEL_SHOP_ID: signed along when a Verotel postback omits shopID

    def click_id(self, raw: object) -> str | None:
        """``raw`` as a valid click id (stripped, case-folded), or None."""
        if not isinstance(raw, str):
            return None
        candidate = raw.strip().lower()
        return candidate if self.click_ids.fullmatch(candidate) else None

    def pick_click_id(self, candidates: list[object]) -> tuple[str | None, str | None]:
        """The first valid click id among ``candidates`` (in priority order) and the first raw value present.

        The raw value is kept, shortened, so an invalid click id can be seen in the record."""
        present = [c for c in candidates if isinstance(c, str) and c.strip()]
        first_raw = present[0].strip()[:MAX_RECORDED_CLICK_ID] if present else None
        for candidate in present:
            valid = self.click_id(candidate)
            if valid is not None:
                return valid, first_raw
        return None, first_raw


def lead_code(identity: str) -> str:
    """A lead code derived from the identity alone, so every retry and duplicate sends the same one."""
    return hashlib.sha256(identity.encode("utf-8")).hexdigest()[:32]
