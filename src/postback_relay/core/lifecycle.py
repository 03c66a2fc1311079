"""What each moment of a purchase's lifecycle becomes: the README's table "What each platform's events become",
as code. Sources say which moment a payment is (`Conversion.payment`); this module alone says what counts.

Why one policy and not one per platform: an advertiser compares campaigns by the conversions and value the
relay reports, so a trial, a $0 order or an upgrade must count the same way whichever platform sold it. What
users of ad networks expect (and what trackers such as RedTrack and Keitaro do with subscription postbacks):

- a $0 payment is never a sale (a trial's $0 invoice, a 100 %-off order, a payment-method change);
- a subscription's first *paid* payment is its purchase, also when it comes after a trial, where platforms
  bill it as an ordinary cycle; later paid cycles are renewals. Which payment was the first paid one is
  remembered per subscription (the relay's `subscription#…` item), since no single event says it;
- an upgrade or proration charge is neither a new purchase nor a renewal, unless UPGRADES_COUNT_AS=renewal;
- a trial start is sent as a lead only where a lead goal is configured (TRAFFICSTARS_GOAL_LEAD, query form):
  in the path form TrafficStars would count it towards the campaign's one goal, as a sale. Otherwise it is
  recorded (`not_counted`) and not sent.

Pure: no I/O. `relay.py` applies the decision, with the subscription's memory for `first` and `cycle`."""

from __future__ import annotations

from typing import Literal, NamedTuple

from postback_relay.core.conversion import ZERO_VALUE, Conversion, GoalKind

__all__ = ["ZERO_VALUE", "Counted", "Decision", "LifecyclePolicy", "NotCounted", "UpgradePolicy", "decide"]
UpgradePolicy = Literal["nothing", "renewal"]


class LifecyclePolicy(NamedTuple):
    """The two settings the table depends on (Settings.lifecycle builds it)."""

    # A lead goal is configured (TRAFFICSTARS_GOAL_LEAD): a lead can be told apart from a sale only by its
    # own goalid, which only the query form sends.
    lead_goal: bool = False
    upgrades_count_as: UpgradePolicy = "nothing"  # UPGRADES_COUNT_AS


class Counted(NamedTuple):
    """Sent (once) towards ``goal``. For a subscription's payment the relay may still make a cycle the
    purchase (the first paid one) or a first payment a renewal (one already counted)."""

    goal: GoalKind


class NotCounted(NamedTuple):
    """Not sent. ``recorded``: kept as a `not_counted` record (a trial start without a lead goal), so the
    operator sees it; otherwise answered `ignored` and nothing is stored (the click id, if any, is still
    remembered for the subscription)."""

    reason: str
    recorded: bool = False


Decision = Counted | NotCounted


def decide(conversion: Conversion, policy: LifecyclePolicy) -> Decision:
    """What ``conversion`` becomes under ``policy``."""
    payment = conversion.payment
    if payment == "postback":  # a tracker approved it: a lead or a sale at whatever payout it reports, even 0
        return Counted(conversion.goal)
    if payment == "payment_method_change":
        return NotCounted("a payment-method change is not a sale")
    if payment == "trial_start":
        if policy.lead_goal:
            return Counted("lead")
        return NotCounted("a trial start counts only towards a lead goal (TRAFFICSTARS_GOAL_LEAD)", recorded=True)
    amount = conversion.amount
    if amount is not None and amount.amount == 0:
        return NotCounted(ZERO_VALUE)
    if payment == "change":
        if policy.upgrades_count_as == "renewal":
            return Counted("renewal")
        return NotCounted("an upgrade or proration is neither a purchase nor a renewal (UPGRADES_COUNT_AS)")
    if payment == "cycle":
        return Counted("renewal")
    if payment == "first":
        return Counted("purchase")
    return Counted(conversion.goal)


def subscription_identity(source: str, subscription: str) -> str:
    """The key of a subscription's memory: its click id and which payment was its first paid one."""
    return f"subscription#{source}#{subscription}"


def alias_identity(identity: str) -> str:
    """The key of an alias: another id of the purchase recorded under a conversion's identity."""
    return f"alias#{identity}"
