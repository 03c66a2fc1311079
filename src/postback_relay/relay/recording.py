"""A counted payment's record: what the lifecycle table makes of it, the subscription's memory (its click id
and first paid payment), the record created (and sent), upgraded by a later event that brings the click id,
or only noted as a duplicate; and the links that say two ids are one purchase."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from aws_lambda_powertools import Logger

from postback_relay.aws.secrets import RelaySecrets
from postback_relay.aws.store import Claim, ConversionStore, StoreUnavailable
from postback_relay.core.conversion import Conversion, Link, Reversal, lead_code
from postback_relay.core.lifecycle import Counted, Decision, NotCounted, decide, subscription_identity
from postback_relay.core.money import ValueDecision, decide_value, format_value
from postback_relay.core.outcome import Outcome
from postback_relay.core.record import UPGRADABLE, Status
from postback_relay.core.tenant import DEFAULT_TENANT
from postback_relay.networks.trafficstars import TrafficStarsClient
from postback_relay.relay.reversals import Reverser
from postback_relay.relay.sending import Sender
from postback_relay.settings import Settings

logger = Logger(child=True)

# The fields an upgrade (a later event with the click id) leaves as the first event wrote them.
KEPT_ON_UPGRADE = ("source", "purchase_id", "first_event_id", "correlation_id")


class Recorder:
    """Records conversions and links; hands a new (or upgraded) record's first attempt to the sender."""

    def __init__(
        self,
        settings: Settings,
        store: ConversionStore,
        client: TrafficStarsClient,
        sender: Sender,
        reverser: Reverser,
    ) -> None:
        self._settings = settings
        self._store = store
        self._client = client
        self._sender = sender
        self._reverser = reverser

    def convert(self, conversion: Conversion, secrets: RelaySecrets) -> Outcome:
        """Decide what the payment counts as (the lifecycle table), then record the delivery: a first one
        creates the record (and sends), a later event that brings the click id a first one lacked upgrades
        it (and sends), any other is a duplicate that is only noted. A partial refund the delivery already
        carries is noted after."""
        conversion, decision = self._follow(conversion, decide(conversion, self._settings.lifecycle))
        if isinstance(decision, NotCounted) and not decision.recorded:
            logger.info("payment not counted", extra={"conversion_id": conversion.identity, "reason": decision.reason})
            return Outcome("ignored", {"status": "ignored", "reason": decision.reason})
        if isinstance(decision, Counted):
            conversion = replace(conversion, goal=decision.goal)
        elif conversion.payment == "trial_start":
            conversion = replace(conversion, goal="lead")  # what it would count towards, were a lead goal set
        if conversion.alias_identities:
            self._reverser.remember_aliases(conversion.source, conversion.identity, conversion.alias_identities)
        outcome = self._record(conversion, secrets, isinstance(decision, NotCounted))
        if conversion.refunded is not None:
            refund = Reversal(
                conversion.source,
                (conversion.purchase_id,),
                f"{conversion.event_id}/refunds",
                conversion.event_type,
                "partially_refunded",
                conversion.refunded,
                tenant=conversion.tenant,
            )
            try:
                self._reverser.reverse(refund)
            except StoreUnavailable as exc:  # the conversion is durable; a 5xx would only count as a failure
                # against the webhook (WooCommerce disables one after a few), and a later delivery notes it
                logger.warning(
                    "partial refund not noted", extra={"conversion_id": conversion.identity, "error": str(exc)}
                )
        return outcome

    def preview(self, conversion: Conversion) -> dict[str, Any]:
        """What recording ``conversion`` would write, without writing it (a reconcile dry run): its key, status,
        click id, value and postback URL (key redacted). A renewal's click id lent by its subscription's memory
        is not looked up, so such a payment previews as the platform reports it."""
        decision = decide(conversion, self._settings.lifecycle)
        fields = self._record_fields(conversion)
        status = self._initial_status(conversion, isinstance(decision, NotCounted))
        shown = ("click_id", "amount", "currency", "value", "value_currency", "goal", "lead_code", "postback_url")
        return {"conversion_id": conversion.identity, "status": str(status), **{k: fields.get(k) for k in shown}}

    def _follow(self, conversion: Conversion, decision: Decision) -> tuple[Conversion, Decision]:
        """Apply a subscription's memory (one write): remember the click id it started with, lend it to the
        later payments that lack it, and make its first paid payment the purchase and every other a
        renewal. A cycle of a subscription the relay never saw start stays the renewal the platform says."""
        if conversion.subscription is None:
            return conversion, decision
        counted = isinstance(decision, Counted)
        counted_payment = counted and conversion.payment in ("first", "cycle")
        starts = conversion.payment in ("first", "trial_start")  # the relay has now seen it start
        borrows = counted and conversion.click_id is None  # an upgrade sent as a renewal needs the click id too
        if conversion.click_id is None and not counted_payment and not starts and not borrows:
            return conversion, decision  # nothing to remember and nothing to learn
        memory = self._store.follow_subscription(
            subscription_identity(conversion.scope, conversion.subscription),
            conversion.click_id,
            conversion.identity if counted_payment else None,
            known_only=not starts,  # only its start makes the relay know a subscription: see the README's table
        )
        if memory is None:
            return conversion, decision
        if conversion.click_id is None and memory.click_id is not None:
            details = {**conversion.details, "click_id_from": "subscription"}
            conversion = replace(conversion, click_id=memory.click_id, raw_click_id=None, details=details)
        if counted_payment:
            decision = Counted("purchase" if memory.first_paid == conversion.identity else "renewal")
        return conversion, decision

    def link(self, link: Link) -> Outcome:
        """Remember what a link event says: another id of a purchase, a subscription's click id or first paid
        payment. Nothing is sent."""
        if link.identity is not None and link.aliases:
            self._reverser.remember_aliases(
                link.source, link.identity, tuple(f"{link.scope}#{alias}" for alias in link.aliases)
            )
        if link.subscription is not None and (link.click_id is not None or link.first_paid is not None):
            first_paid = f"{link.scope}#{link.first_paid}" if link.first_paid else None
            memory_pk = subscription_identity(link.scope, link.subscription)
            self._store.follow_subscription(memory_pk, link.click_id, first_paid, known_only=False)
        logger.info("link remembered", extra={"event_type": link.event_type, "conversion_id": link.identity})
        return Outcome("linked", {"status": "linked", "conversion_id": link.identity}, link.identity)

    def _record(self, conversion: Conversion, secrets: RelaySecrets, not_counted: bool) -> Outcome:
        pk = conversion.identity
        status = self._initial_status(conversion, not_counted)
        fields = self._record_fields(conversion)
        lease = self._settings.send_lease_seconds
        event_id, event_type = conversion.event_id, conversion.event_type
        created = self._store.create(pk, status, fields, event_id, event_type, lease)
        if isinstance(created, Claim):
            return self._sender.send(pk, created, secrets, event_id)
        if created.done:
            logger.info("conversion recorded, not forwarded", extra={"conversion_id": pk, "status": status})
            return Outcome(status, {"status": status, "conversion_id": pk}, pk)
        existing = created.record
        if existing is not None and existing.status in UPGRADABLE and status is Status.SENDING:
            # Stripe fires payment_intent.succeeded before checkout.session.completed; only the later one may
            # carry the click id (client_reference_id). The record is upgraded, never duplicated.
            upgrade = {k: v for k, v in fields.items() if k not in KEPT_ON_UPGRADE}
            claim = self._store.upgrade(pk, upgrade, event_id, event_type, lease)
            if claim is not None:
                return self._sender.send(pk, claim, secrets, event_id)
        noted = self._store.note_delivery(pk, event_id, event_type) or existing
        existing_status = str(noted.status) if noted is not None else "unknown"
        logger.info("duplicate delivery", extra={"conversion_id": pk, "conversion_status": existing_status})
        body = {"status": "duplicate", "conversion_id": pk, "conversion_status": existing_status}
        return Outcome("duplicate", body, pk)

    def _initial_status(self, conversion: Conversion, not_counted: bool) -> Status:
        if not conversion.livemode and not self._settings.forward_test_events:
            return Status.TEST_MODE
        if not_counted:
            return Status.NOT_COUNTED
        if conversion.click_id is None:
            return Status.INVALID_CLICK_ID if conversion.raw_click_id else Status.NO_CLICK_ID
        return Status.SENDING

    def _record_fields(self, conversion: Conversion) -> dict[str, Any]:
        settings = self._settings
        if conversion.amount is not None and conversion.amount.amount == 0:  # a trial's lead: no sale, no value
            decision = ValueDecision(None, "no_sale_value")
        else:
            decision = decide_value(
                conversion.amount,
                settings.value_policy,
                settings.account_currency,
                settings.fx_rates,
                conversion.platform_converted,
                accepted=self._client.value_range,
            )
        fields: dict[str, Any] = {
            "source": conversion.source,
            "tenant": conversion.tenant if conversion.tenant != DEFAULT_TENANT else None,
            "origin": conversion.origin if conversion.origin != "webhook" else None,
            "purchase_id": conversion.purchase_id,
            "first_event_id": conversion.event_id,
            "correlation_id": conversion.event_id,  # the conversion's: the event that created the record
            "livemode": conversion.livemode,
            "click_id": conversion.click_id,
            "raw_click_id": conversion.raw_click_id if conversion.click_id is None else None,
            "amount": format(conversion.amount.amount, "f") if conversion.amount else None,
            "currency": conversion.amount.currency if conversion.amount else None,
            "value": format_value(decision.value) if decision.value is not None else None,
            "value_currency": settings.account_currency if decision.value is not None else None,
            "value_note": decision.note,
            **{f"detail_{name}": value for name, value in conversion.details.items()},
            "goal": conversion.goal,
        }
        if conversion.click_id is not None:
            code = conversion.lead_code or lead_code(conversion.identity)
            fields["lead_code"] = code
            postback = self._client.postback(conversion.click_id, code, decision.value, conversion.goal)
            fields["postback_url"] = self._client.redacted_url(postback)
        return fields
