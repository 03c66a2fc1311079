"""Refunds, chargebacks and cancellations: every conversion a reversal names is marked, by any id of the
purchase (its aliases included), and a platform's reversal of a purchase not recorded yet is kept as a reversed
record (a tombstone), so a late delivery of the purchase is a duplicate and never sent."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from postback_relay.aws.store import ConversionStore
from postback_relay.core.conversion import Reversal
from postback_relay.core.outcome import Outcome

logger = Logger(child=True)


class Reverser:
    """Marks reversals on the conversion records, and lets a newly linked id inherit one."""

    def __init__(self, store: ConversionStore) -> None:
        self._store = store

    def reverse(self, reversal: Reversal) -> Outcome:
        """Mark every conversion the reversal names, by any id of the purchase (its aliases included), so a
        refund naming a subscription invoice's PaymentIntent marks the invoice's conversion, or stops it
        if it is still waiting to be sent. A platform's reversal of a purchase not recorded yet is kept as a
        reversed record (a tombstone) under each purchase an alias names, and under its most specific id
        when it marked nothing, so a late delivery of the purchase is a duplicate and never sent."""
        fields = {
            "reversal_amount": format(reversal.amount.amount, "f") if reversal.amount else None,
            "reversal_currency": reversal.amount.currency if reversal.amount else None,
        }
        fields = {name: value for name, value in fields.items() if value is not None}
        resolved = self._store.resolve(reversal.identities)
        pks = (*resolved.recorded, *resolved.aliased)
        marked = self._store.mark_reversal(pks, reversal.kind, reversal.event_id, fields) if pks else []
        kept: list[str] = []
        if reversal.tombstone:
            missing = [pk for pk in resolved.aliased if pk not in marked]
            if not marked:
                missing.insert(0, reversal.identities[0])
            for pk in dict.fromkeys(missing):
                how = self._reverse_or_keep(pk, reversal.source, reversal.kind, reversal.event_id, fields)
                if how is not None:
                    (kept if how == "kept" else marked).append(pk)
        if kept:
            logger.info("reversal recorded before its purchase", extra={"conversion_ids": kept})
        if not marked and not kept:
            reason = "no recorded purchase for this reversal"
            return Outcome("ignored", {"status": "ignored", "reason": reason})
        found = [*marked, *kept]
        logger.info("conversion reversed", extra={"conversion_id": found[0], "reversal": reversal.kind})
        body: dict[str, Any] = {"status": reversal.kind, "conversion_id": found[0]}
        if len(found) > 1:
            body["conversion_ids"] = found
        if not marked:
            body["recorded_before_purchase"] = True
        return Outcome(reversal.kind, body, found[0])

    def remember_aliases(self, source: str, pk: str, aliases: tuple[str, ...]) -> None:
        """Record ``aliases`` as other ids of the conversion ``pk``, then let it inherit a reversal that reached
        one of them first (a refund naming the PaymentIntent before the event linking it to its invoice):
        the conversion is marked, or, not recorded yet, born reversed. A refund concurrent with the link
        may still miss it by a few milliseconds (each reads before the other writes)."""
        self._store.add_aliases(pk, aliases)
        for reversed_alias in self._store.reversed_among(aliases):
            kind = reversed_alias.reversal_kind or str(reversed_alias.status)
            event_id = reversed_alias.reversal_event_id or reversed_alias.pk
            fields = {
                name: value
                for name, value in (
                    ("reversal_amount", reversed_alias.reversal_amount),
                    ("reversal_currency", reversed_alias.reversal_currency),
                )
                if value is not None
            }
            self._reverse_or_keep(pk, source, kind, event_id, fields)
            logger.info("reversal inherited from an alias", extra={"conversion_id": pk, "alias": reversed_alias.pk})

    def _reverse_or_keep(self, pk: str, source: str, kind: str, event_id: str, fields: dict[str, Any]) -> str | None:
        """Reverse ``pk`` whether or not it is recorded yet: a tombstone where it is not ("kept"), else the
        record marked ("marked", also when it appeared meanwhile: a tombstone refuses an existing record).
        None for a reversal that keeps nothing of an absent record (a partial refund, a dispute won)."""
        if self._store.tombstone(pk, source, pk.partition("#")[2], kind, event_id, fields):
            return "kept"
        return "marked" if self._store.mark_reversal((pk,), kind, event_id, fields) else None
