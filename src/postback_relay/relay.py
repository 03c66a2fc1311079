"""The relay's logic, between the HTTP handler and the adapters: verify → parse → record → send → record.

Invariants kept here: a 2xx only after the record is durable; one successful GET per identity; unsigned
input changes nothing; the key never leaves the TrafficStars client and the secret store."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.exceptions import OrphanedChildLoggerError

from postback_relay.aws.queue import QueueUnavailable, RetryQueue
from postback_relay.aws.secrets import RelaySecrets, SecretKeyMissing, SecretStore, SecretUnavailable
from postback_relay.aws.store import Claim, ConversionStore, StoreUnavailable
from postback_relay.core.backoff import next_attempt_at, parse_retry_after
from postback_relay.core.conversion import Conversion, Ignored, Link, ParseContext, Reversal, lead_code
from postback_relay.core.lifecycle import Counted, Decision, NotCounted, decide, subscription_identity
from postback_relay.core.money import ValueDecision, decide_value, format_value
from postback_relay.core.record import IN_FLIGHT, OUTCOME_STATUS, UPGRADABLE, Status, iso
from postback_relay.networks.trafficstars import Answer, TrafficStarsClient
from postback_relay.platforms.base import (
    AnswersPings,
    MalformedEvent,
    SignatureError,
    SignatureMismatch,
    WebhookSource,
)
from postback_relay.settings import Settings

logger = Logger(child=True)

# The fields an upgrade (a later event with the click id) leaves as the first event wrote them.
KEPT_ON_UPGRADE = ("source", "purchase_id", "first_event_id", "correlation_id")


class RelayError(Exception):
    """A request the relay answers with an error status and a JSON body ``{"error": code, "message": …}``."""

    http_status = 500
    code = "internal_error"


class Unauthorized(RelayError):
    http_status, code = 401, "invalid_signature"


class BadRequest(RelayError):
    http_status, code = 400, "malformed_body"


class PayloadTooLarge(RelayError):
    http_status, code = 413, "body_too_large"


class SourceNotConfigured(RelayError):
    """A route whose platform has no signing secret in this deployment: 404, as for any path nothing serves,
    so a scanner cannot trip the 5xx alarms. ``looks_signed`` when the request is a well-formed, fresh,
    signed-looking delivery of that platform: then a platform is really sending to it, which the
    UnconfiguredSourceDeliveries metric and its alarm (and `postback-relay check`) make visible."""

    http_status, code = 404, "source_not_configured"

    def __init__(self, message: str, looks_signed: bool = False) -> None:
        super().__init__(message)
        self.looks_signed = looks_signed


class Unavailable(RelayError):
    http_status, code = 503, "temporarily_unavailable"


@dataclass(frozen=True)
class Outcome:
    """How one webhook ended: the HTTP answer, and the figures the handler turns into metrics and logs."""

    http_status: int
    status: str
    body: dict[str, Any]
    conversion_id: str | None = None
    answers: tuple[Answer, ...] = field(default_factory=tuple)
    value: Decimal | None = None
    event_id: str | None = None  # the platform's event id: the correlation id of the logs, the record and the trace
    attempt: int = 0  # which attempt at the postback this delivery made (1 = the first); 0 when none was made


class Relay:
    """Turns one verified webhook into at most one postback, with a durable record of what happened."""

    def __init__(
        self,
        settings: Settings,
        secrets: SecretStore,
        store: ConversionStore,
        client: TrafficStarsClient,
        queue: RetryQueue | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self._secrets = secrets
        self._store = store
        self._client = client
        self._queue = queue
        self._clock = clock
        self._retry_policy = settings.retry_policy
        self._parse_context = ParseContext(
            settings.click_id_metadata_key, settings.account_currency, settings.postback_approved_statuses
        )

    def handle(self, source: WebhookSource, raw_body: bytes, headers: Mapping[str, str]) -> Outcome:
        """Process one webhook delivery; raises RelayError for answers that are not a processed event."""
        if len(raw_body) > self.settings.max_body_bytes:
            raise PayloadTooLarge(f"body is larger than {self.settings.max_body_bytes} bytes")
        if isinstance(source, AnswersPings) and source.is_ping(raw_body, headers):
            logger.info("platform ping answered", extra={"source": source.name})
            return Outcome(200, "ping", {"status": "ping"})
        secrets = self._verified_secrets(source, raw_body, headers)
        try:
            payload = json.loads(raw_body)
        except (ValueError, RecursionError):  # not JSON, not UTF-8/16/32, or nested deeper than Python recurses
            raise BadRequest("body is not valid JSON") from None
        return self._process(source, payload, secrets)

    def handle_query(self, source: WebhookSource, raw_query: str, headers: Mapping[str, str]) -> Outcome:
        """Process one GET postback: the raw query string is what the sender authenticates and what the
        source reads, as ``parse_qsl`` pairs (API Gateway's comma-joined parameters would be ambiguous)."""
        raw = raw_query.encode("utf-8")
        if len(raw) > self.settings.max_body_bytes:
            raise PayloadTooLarge(f"query is larger than {self.settings.max_body_bytes} bytes")
        secrets = self._verified_secrets(source, raw, headers)
        return self._process(source, parse_qsl(raw_query, keep_blank_values=True), secrets)

    def _process(self, source: WebhookSource, payload: Any, secrets: RelaySecrets) -> Outcome:
        try:
            event = source.parse(payload, self._parse_context)
        except MalformedEvent as exc:
            raise BadRequest(str(exc)) from None
        if isinstance(event, Ignored):
            logger.info("event ignored", extra={"event_type": event.event_type, "reason": event.reason})
            return Outcome(200, "ignored", {"status": "ignored", "reason": event.reason})
        _tag_logs(event.event_id)
        try:
            if isinstance(event, Reversal):
                outcome = self._reverse(event)
            elif isinstance(event, Link):
                outcome = self._link(event)
            else:
                outcome = self._convert(event, secrets)
        except StoreUnavailable as exc:
            raise Unavailable(str(exc)) from None
        return replace(outcome, event_id=event.event_id)

    def _verified_secrets(self, source: WebhookSource, raw_body: bytes, headers: Mapping[str, str]) -> RelaySecrets:
        secrets = self._current_secrets()
        signing = secrets.signing_secrets(source.secret_field)
        if not signing:
            refreshed = self._secrets.refresh()  # the key may have been added since the cache was filled
            if refreshed is None or not refreshed.signing_secrets(source.secret_field):
                message = f"the secret has no {source.secret_field}: {source.name} is not set up"
                raise SourceNotConfigured(message, self._looks_signed(source, raw_body, headers))
            secrets, signing = refreshed, refreshed.signing_secrets(source.secret_field)
        now = self._clock()
        tolerance = self.settings.signature_tolerance_seconds
        try:
            source.verify(raw_body, headers, signing, now, tolerance)
            return secrets
        except SignatureMismatch as exc:
            refreshed = self._secrets.refresh()  # a rotated signing secret is picked up here
            if refreshed is None or refreshed.signing_secrets(source.secret_field) == signing:
                raise Unauthorized(str(exc)) from None
        except SignatureError as exc:
            raise Unauthorized(str(exc)) from None
        try:
            source.verify(raw_body, headers, refreshed.signing_secrets(source.secret_field), now, tolerance)
        except SignatureError as exc:
            raise Unauthorized(str(exc)) from None
        return refreshed

    def _looks_signed(self, source: WebhookSource, raw_body: bytes, headers: Mapping[str, str]) -> bool:
        """True when the request passes every check of the platform's signature but the HMAC itself (which
        needs the missing secret): verifying against no secret at all fails only on the match then."""
        try:
            source.verify(raw_body, headers, (), self._clock(), self.settings.signature_tolerance_seconds)
        except SignatureMismatch:
            return True
        except SignatureError:
            return False
        return False  # unreachable: no secret, no match

    def _current_secrets(self) -> RelaySecrets:
        try:
            return self._secrets.get()
        except SecretUnavailable as exc:
            raise Unavailable(str(exc)) from None

    def _convert(self, conversion: Conversion, secrets: RelaySecrets) -> Outcome:
        """Decide what the payment counts as (the lifecycle table), then record the delivery: a first one
        creates the record (and sends), a later event that brings the click id a first one lacked upgrades
        it (and sends), any other is a duplicate that is only noted. A partial refund the delivery already
        carries is noted after."""
        conversion, decision = self._follow(conversion, decide(conversion, self.settings))
        if isinstance(decision, NotCounted) and not decision.recorded:
            logger.info("payment not counted", extra={"conversion_id": conversion.identity, "reason": decision.reason})
            return Outcome(200, "ignored", {"status": "ignored", "reason": decision.reason})
        if isinstance(decision, Counted):
            conversion = replace(conversion, goal=decision.goal)
        elif conversion.payment == "trial_start":
            conversion = replace(conversion, goal="lead")  # what it would count towards, were a lead goal set
        if conversion.alias_identities:
            self._alias(conversion.source, conversion.identity, conversion.alias_identities)
        outcome = self._record(conversion, secrets, isinstance(decision, NotCounted))
        if conversion.refunded is not None:
            refund = Reversal(
                conversion.source,
                (conversion.purchase_id,),
                f"{conversion.event_id}/refunds",
                conversion.event_type,
                "partially_refunded",
                conversion.refunded,
            )
            try:
                self._reverse(refund)
            except StoreUnavailable as exc:  # the conversion is durable; a 5xx would only count as a failure
                # against the webhook (WooCommerce disables one after a few), and a later delivery notes it
                logger.warning(
                    "partial refund not noted", extra={"conversion_id": conversion.identity, "error": str(exc)}
                )
        return outcome

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
            subscription_identity(conversion.source, conversion.subscription),
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

    def _link(self, link: Link) -> Outcome:
        """Remember what a link event says: another id of a purchase, a subscription's click id or first paid
        payment. Nothing is sent."""
        if link.identity is not None and link.aliases:
            self._alias(link.source, link.identity, tuple(f"{link.source}#{alias}" for alias in link.aliases))
        if link.subscription is not None and (link.click_id is not None or link.first_paid is not None):
            first_paid = f"{link.source}#{link.first_paid}" if link.first_paid else None
            memory_pk = subscription_identity(link.source, link.subscription)
            self._store.follow_subscription(memory_pk, link.click_id, first_paid, known_only=False)
        logger.info("link remembered", extra={"event_type": link.event_type, "conversion_id": link.identity})
        return Outcome(200, "linked", {"status": "linked", "conversion_id": link.identity}, link.identity)

    def _alias(self, source: str, pk: str, aliases: tuple[str, ...]) -> None:
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

    def _record(self, conversion: Conversion, secrets: RelaySecrets, not_counted: bool) -> Outcome:
        pk = conversion.identity
        status = self._initial_status(conversion, not_counted)
        fields = self._record_fields(conversion)
        lease = self.settings.send_lease_seconds
        event_id, event_type = conversion.event_id, conversion.event_type
        created = self._store.create(pk, status, fields, event_id, event_type, lease)
        if isinstance(created, Claim):
            return self._send(pk, created, secrets, event_id)
        if created.done:
            logger.info("conversion recorded, not forwarded", extra={"conversion_id": pk, "status": status})
            return Outcome(200, status, {"status": status, "conversion_id": pk}, pk)
        existing = created.record
        if existing is not None and existing.status in UPGRADABLE and status is Status.SENDING:
            # Stripe fires payment_intent.succeeded before checkout.session.completed; only the later one may
            # carry the click id (client_reference_id). The record is upgraded, never duplicated.
            upgrade = {k: v for k, v in fields.items() if k not in KEPT_ON_UPGRADE}
            claim = self._store.upgrade(pk, upgrade, event_id, event_type, lease)
            if claim is not None:
                return self._send(pk, claim, secrets, event_id)
        noted = self._store.note_delivery(pk, event_id, event_type) or existing
        existing_status = str(noted.status) if noted is not None else "unknown"
        logger.info("duplicate delivery", extra={"conversion_id": pk, "conversion_status": existing_status})
        body = {"status": "duplicate", "conversion_id": pk, "conversion_status": existing_status}
        return Outcome(200, "duplicate", body, pk)

    def _initial_status(self, conversion: Conversion, not_counted: bool) -> Status:
        if not conversion.livemode and not self.settings.forward_test_events:
            return Status.TEST_MODE
        if not_counted:
            return Status.NOT_COUNTED
        if conversion.click_id is None:
            return Status.INVALID_CLICK_ID if conversion.raw_click_id else Status.NO_CLICK_ID
        return Status.SENDING

    def _record_fields(self, conversion: Conversion) -> dict[str, Any]:
        settings = self.settings
        if conversion.amount is not None and conversion.amount.amount == 0:  # a trial's lead: no sale, no value
            decision = ValueDecision(None, "no_sale_value")
        else:
            decision = decide_value(
                conversion.amount,
                settings.value_policy,
                settings.account_currency,
                settings.fx_rates,
                conversion.platform_converted,
            )
        fields: dict[str, Any] = {
            "source": conversion.source,
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
            postback = settings.postback_options.postback(conversion.click_id, code, decision.value, conversion.goal)
            fields["postback_url"] = self._client.redacted_url(postback)
        return fields

    def _send(self, pk: str, claim: Claim, secrets: RelaySecrets, event_id: str | None = None) -> Outcome:
        """One attempt under ``claim``: the GET (and one more after a refetched key), then its outcome:
        sent, rejected (final), or retry_pending with its next due time (queued), or failed when the
        retry window is spent (parked in the dead-letter queue first, so no failed record lacks its
        message). ``event_id`` is the delivery's (None on a retry)."""
        record = claim.record
        correlation_id = event_id or record.correlation_id or record.first_event_id
        if event_id is None and correlation_id:
            _tag_logs(correlation_id)  # no delivery (a retry): the conversion's own id
        postback = self.settings.postback_options.postback(
            str(record.click_id), str(record.lead_code), Decimal(record.value) if record.value else None, record.goal
        )
        try:
            key = secrets.trafficstars_key
        except SecretKeyMissing as exc:
            answers: tuple[Answer, ...] = (Answer("retryable", None, str(exc), "key_missing"),)
        else:
            answer = self._client.send(postback, key)
            answers = (answer,)
            if answer.kind == "invalid_key":
                refreshed = self._secrets.refresh()  # the key may have been rotated in Secrets Manager
                if refreshed is not None and refreshed.trafficstars_key != key:
                    answers += (self._client.send(postback, refreshed.trafficstars_key),)
        final = answers[-1]
        now = self._clock()
        attempts = [
            {
                "at": iso(now),
                "outcome": a.kind,
                "http_status": a.http_status,
                "message": a.message,
                "duration_ms": a.duration_ms,
                "correlation_id": correlation_id,
            }
            for a in answers
        ]
        status, due_at = self._outcome(pk, record.attempts, float(record.created_epoch or now), now, final)
        fields: dict[str, Any] = {
            "trafficstars_http_status": final.http_status,
            "trafficstars_answer": final.message,
            "trafficstars_reason": final.reason,
            "last_attempt_at": iso(now),
            "next_attempt_at": iso(due_at) if due_at is not None else None,
            "sent_at": iso(now) if status is Status.SENT else None,
        }
        try:
            recorded = self._store.finish(
                pk, claim, status, {k: v for k, v in fields.items() if v is not None}, attempts, due_at
            )
        except StoreUnavailable as exc:
            recorded = None
            logger.error("outcome not recorded", extra={"conversion_id": pk, "status": status, "error": str(exc)})
        queued = False
        if recorded is not None and recorded.done:
            queued = status is Status.RETRY_PENDING and self._schedule(pk, due_at, now)
        elif recorded is not None and recorded.record is not None:
            # Reversed meanwhile (the attempt is logged on the reversed record) or taken over by another
            # sender after the lease ran out: the record says what it is now.
            logger.warning("outcome not recorded under the claim", extra={"conversion_id": pk, "status": status})
            status = recorded.record.status
        log = logger.warning if status is not Status.SENT else logger.info
        log(
            "postback " + status,
            extra={
                "conversion_id": pk,
                "trafficstars_answer": final.message,
                "trafficstars_http_status": final.http_status,
            },
        )
        body: dict[str, Any] = {"status": str(status), "conversion_id": pk}
        if status in (Status.REJECTED, Status.FAILED):
            body["reason"] = final.message
        # A conversion waiting for a retry is durable and queued: the sender need not retry. Without a queue,
        # if SQS refused the message, or if the outcome could not be written, 503 makes the sender redeliver
        # (a duplicate, only noted): the due index holds the record for the sweep either way.
        unsettled = recorded is None or (status is Status.RETRY_PENDING and not queued)
        sent_value = postback.value if status is Status.SENT else None
        return Outcome(503 if unsettled else 200, str(status), body, pk, answers, sent_value, attempt=record.attempts)

    def _outcome(
        self, pk: str, attempts: int, first_attempt_at: float, now: float, final: Answer
    ) -> tuple[Status, float | None]:
        """The status an attempt's answer leads to and, for a retry, when it is due. An exhausted conversion
        is parked in the dead-letter queue before it is recorded failed; if that queue cannot take it, it
        stays retry_pending (due after the base delay) and is parked by a later attempt."""
        status = OUTCOME_STATUS.get(final.kind, Status.RETRY_PENDING)
        if status is not Status.RETRY_PENDING:
            return status, None
        retry_after = parse_retry_after(final.retry_after, now)
        due_at = next_attempt_at(attempts, first_attempt_at, now, self._retry_policy, retry_after)
        if due_at is not None:
            return status, due_at
        if self._queue is None:
            return Status.FAILED, None  # nowhere to park it: the record and the alarm on failed say it all
        try:
            self._queue.dead_letter(pk, final.message, attempts)
        except QueueUnavailable as exc:
            logger.error("dead-letter queue unavailable", extra={"conversion_id": pk, "error": str(exc)})
            return Status.RETRY_PENDING, now + self._retry_policy.base_delay_seconds
        return Status.FAILED, None

    def _schedule(self, pk: str, due_at: float | None, now: float) -> bool:
        """Queue the next try; True once it is queued or the wait is longer than SQS can delay (the worker
        re-queues an early message, and the sweep finds the record in the due index either way)."""
        if self._queue is None or due_at is None:
            return False
        try:
            self._queue.schedule(pk, due_at - now, due_at)
        except QueueUnavailable as exc:
            logger.error("retry queue unavailable", extra={"conversion_id": pk, "error": str(exc)})
            return False
        return True

    def retry(self, conversion_id: str, message_due_at: float | None = None) -> Outcome | None:
        """The retry worker's attempt at one conversion; None when it is not (or no longer) due: finished or
        reversed meanwhile, or held by another sender. A message that arrives before its conversion is due
        (``message_due_at``, the due time it was queued for, is still the record's) is put back with the
        remaining delay rather than dropped."""
        secrets = self._current_secrets()  # before the claim: a claim without a key would only strand it
        try:
            claimed = self._store.claim(conversion_id, self.settings.send_lease_seconds)
        except StoreUnavailable as exc:
            raise Unavailable(str(exc)) from None
        if isinstance(claimed, Claim):
            return self._send(conversion_id, claimed, secrets)
        record, now = claimed.record, self._clock()
        if record is not None and record.is_final and record.due_shard is not None:
            self._store.leave_due_index(conversion_id)  # written before 0.2.0: swept, and now out of the index
            return None
        if (
            record is not None
            and record.status in IN_FLIGHT
            and record.due_at is not None
            and float(record.due_at) > now
            and message_due_at is not None
            and abs(float(record.due_at) - message_due_at) < 0.001
            and self._queue is not None
        ):
            self._queue.schedule(conversion_id, float(record.due_at) - now, float(record.due_at))
            logger.info("early message put back", extra={"conversion_id": conversion_id})
        return None

    def sweep(self, deadline: Callable[[], bool] = lambda: False) -> int:
        """Re-queue every conversion whose due time passed more than the grace period ago: a lost message, a
        sender that died holding its lease, a wait longer than SQS can delay. Pages through the whole due
        index (it holds only the backlog), oldest first, until ``deadline()`` says the invocation's time is
        nearly spent; the next run goes on from the oldest. Returns how many were queued."""
        if self._queue is None:
            return 0
        queued = 0
        batch: list[tuple[str, float]] = []
        try:
            for due in self._store.due(self._clock() - self.settings.sweep_grace_seconds):
                batch.append((due.pk, float(due.due_at)))
                if len(batch) == 10:
                    queued += self._queue.schedule_now(batch)
                    batch = []
                    if deadline():
                        break
            if batch:
                queued += self._queue.schedule_now(batch)
        except StoreUnavailable as exc:
            raise Unavailable(str(exc)) from None
        if queued:
            logger.warning("sweep re-queued stranded conversions", extra={"count": queued})
        return queued

    def _reverse(self, reversal: Reversal) -> Outcome:
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
            return Outcome(200, "ignored", {"status": "ignored", "reason": reason})
        found = [*marked, *kept]
        logger.info("conversion reversed", extra={"conversion_id": found[0], "reversal": reversal.kind})
        body: dict[str, Any] = {"status": reversal.kind, "conversion_id": found[0]}
        if len(found) > 1:
            body["conversion_ids"] = found
        if not marked:
            body["recorded_before_purchase"] = True
        return Outcome(200, reversal.kind, body, found[0])

    def _reverse_or_keep(self, pk: str, source: str, kind: str, event_id: str, fields: dict[str, Any]) -> str | None:
        """Reverse ``pk`` whether or not it is recorded yet: a tombstone where it is not ("kept"), else the
        record marked ("marked", also when it appeared meanwhile: a tombstone refuses an existing record).
        None for a reversal that keeps nothing of an absent record (a partial refund, a dispute won)."""
        if self._store.tombstone(pk, source, pk.partition("#")[2], kind, event_id, fields):
            return "kept"
        return "marked" if self._store.mark_reversal((pk,), kind, event_id, fields) else None


def _tag_logs(correlation_id: str) -> None:
    """Put the platform's event id on every later log line of the invocation (the handler's Logger clears it
    per invocation). Without a handler's Logger (a script, a test) there is nothing to tag."""
    with contextlib.suppress(OrphanedChildLoggerError):
        logger.set_correlation_id(correlation_id)
