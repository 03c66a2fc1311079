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

from postback_relay.backoff import next_attempt_at, parse_retry_after
from postback_relay.conversion import Conversion, Ignored, Reversal, lead_code
from postback_relay.money import decide_value, format_value
from postback_relay.queue import MAX_DELAY_SECONDS, QueueUnavailable, RetryQueue
from postback_relay.secret_store import RelaySecrets, SecretKeyMissing, SecretStore, SecretUnavailable
from postback_relay.settings import Settings
from postback_relay.sources.base import (
    AnswersPings,
    MalformedEvent,
    SignatureError,
    SignatureMismatch,
    WebhookSource,
)
from postback_relay.store import NOT_FORWARDED, Claim, ConversionStore, StoreUnavailable, iso_timestamp
from postback_relay.trafficstars import Answer, TrafficStarsClient

logger = Logger(child=True)

STATUS_BY_ANSWER = {"ok": "sent", "rejected": "rejected", "invalid_key": "rejected", "retryable": "retry_pending"}


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
    http_status, code = 503, "source_not_configured"


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
        except ValueError:
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
            event = source.parse(payload, self.settings)
        except MalformedEvent as exc:
            raise BadRequest(str(exc)) from None
        if isinstance(event, Ignored):
            logger.info("event ignored", extra={"event_type": event.event_type, "reason": event.reason})
            return Outcome(200, "ignored", {"status": "ignored", "reason": event.reason})
        _tag_logs(event.event_id)
        try:
            outcome = self._reverse(event) if isinstance(event, Reversal) else self._convert(event, secrets)
        except StoreUnavailable as exc:
            raise Unavailable(str(exc)) from None
        return replace(outcome, event_id=event.event_id)

    def _verified_secrets(self, source: WebhookSource, raw_body: bytes, headers: Mapping[str, str]) -> RelaySecrets:
        secrets = self._current_secrets()
        signing = secrets.signing_secrets(source.secret_field)
        if not signing:
            refreshed = self._secrets.refresh()  # the key may have been added since the cache was filled
            if refreshed is None or not refreshed.signing_secrets(source.secret_field):
                raise SourceNotConfigured(f"the secret has no {source.secret_field}: {source.name} is not set up")
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

    def _current_secrets(self) -> RelaySecrets:
        try:
            return self._secrets.get()
        except SecretUnavailable as exc:
            raise Unavailable(str(exc)) from None

    def _convert(self, conversion: Conversion, secrets: RelaySecrets) -> Outcome:
        pk = conversion.identity
        status = self._initial_status(conversion)
        fields = self._record_fields(conversion, status)
        lease = self.settings.send_lease_seconds
        begun = self._store.begin(pk, fields, conversion.event_id, conversion.event_type, lease)
        if begun.created:
            if begun.claim is None:
                logger.info("conversion recorded, not forwarded", extra={"conversion_id": pk, "status": status})
                return Outcome(200, status, {"status": status, "conversion_id": pk}, pk)
            return self._send(pk, begun.claim, secrets, conversion.event_id)
        existing = begun.existing or {}
        existing_status = str(existing.get("status"))
        claim: Claim | None = None
        if existing_status in NOT_FORWARDED and status == "sending":
            # Stripe fires payment_intent.succeeded before checkout.session.completed; only the later one may
            # carry the click id (client_reference_id). The record is upgraded, never duplicated.
            kept = ("status", "source", "purchase_id", "first_event_id", "correlation_id")
            upgrade = {k: v for k, v in fields.items() if k not in kept}
            claim = self._store.claim(pk, lease, upgrade=upgrade)
        elif existing_status == "retry_pending" or (
            existing_status == "sending" and float(existing.get("lease_until", 0)) < self._clock()
        ):
            claim = self._store.claim(pk, lease)
        if claim is not None:
            return self._send(pk, claim, secrets, conversion.event_id)
        logger.info("duplicate delivery", extra={"conversion_id": pk, "conversion_status": existing_status})
        body = {"status": "duplicate", "conversion_id": pk, "conversion_status": existing_status}
        return Outcome(200, "duplicate", body, pk)

    def _initial_status(self, conversion: Conversion) -> str:
        if not conversion.livemode and not self.settings.forward_test_events:
            return "test_mode"
        if conversion.click_id is None:
            return "invalid_click_id" if conversion.raw_click_id else "no_click_id"
        return "sending"

    def _record_fields(self, conversion: Conversion, status: str) -> dict[str, Any]:
        settings = self.settings
        decision = decide_value(conversion.amount, settings.value_policy, settings.account_currency, settings.fx_rates)
        fields: dict[str, Any] = {
            "source": conversion.source,
            "purchase_id": conversion.purchase_id,
            "status": status,
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
        retry window is spent (dead-letter queue). ``event_id`` is the delivery's (None on a retry)."""
        record = claim.record
        correlation_id = event_id or record.get("correlation_id") or record.get("first_event_id")
        if event_id is None and correlation_id:
            _tag_logs(str(correlation_id))  # no delivery (a retry): the conversion's own id
        value = record.get("value")
        goal = str(record.get("goal", "purchase"))
        postback = self.settings.postback_options.postback(
            str(record["click_id"]), str(record["lead_code"]), Decimal(value) if value else None, goal
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
        status = STATUS_BY_ANSWER[final.kind]
        now = self._clock()
        due_at: float | None = None
        if status == "retry_pending":
            attempts_made = int(record.get("attempts", 1))
            first = float(record.get("created_epoch", now))
            retry_after = parse_retry_after(final.retry_after, now)
            due_at = next_attempt_at(attempts_made, first, now, self._retry_policy, retry_after)
            if due_at is None:
                status = "failed"
        fields: dict[str, Any] = {
            "trafficstars_http_status": final.http_status,
            "trafficstars_answer": final.message,
            "trafficstars_reason": final.reason,
            "last_attempt_at": iso_timestamp(now),
            "next_attempt_at": iso_timestamp(due_at) if due_at is not None else None,
        }
        if status == "sent":
            fields["sent_at"] = iso_timestamp(now)
        attempts = [
            {
                "at": iso_timestamp(now),
                "outcome": a.kind,
                "http_status": a.http_status,
                "message": a.message,
                "duration_ms": a.duration_ms,
                "correlation_id": correlation_id,
            }
            for a in answers
        ]
        try:
            recorded = self._store.finish(
                pk, claim, status, {k: v for k, v in fields.items() if v is not None}, attempts, due_at
            )
        except StoreUnavailable as exc:
            recorded = False
            logger.error("outcome not recorded", extra={"conversion_id": pk, "status": status, "error": str(exc)})
        if not recorded:
            # The lease ends and the sweep finds the record in flight; the next attempt reuses the lead_code.
            logger.warning("outcome not recorded under the claim", extra={"conversion_id": pk, "status": status})
        queued = self._after_attempt(pk, status, due_at, now, final, int(record.get("attempts", 1)))
        log = logger.warning if status != "sent" else logger.info
        log(
            "postback " + status,
            extra={
                "conversion_id": pk,
                "trafficstars_answer": final.message,
                "trafficstars_http_status": final.http_status,
            },
        )
        body: dict[str, Any] = {"status": status, "conversion_id": pk}
        if status in ("rejected", "failed"):
            body["reason"] = final.message
        # A conversion waiting for a retry is durable and queued: the sender need not retry. Without a queue
        # (or if SQS refused the message) 503 makes the sender redeliver, which retries it too.
        http_status = 503 if status == "retry_pending" and not queued else 200
        sent_value = postback.value if status == "sent" else None
        return Outcome(http_status, status, body, pk, answers, sent_value, attempt=int(record.get("attempts", 1)))

    def _after_attempt(
        self, pk: str, status: str, due_at: float | None, now: float, final: Answer, attempts: int
    ) -> bool:
        """Queue the next try, or park an exhausted conversion in the dead-letter queue. True if queued."""
        if self._queue is None:
            return False
        try:
            if status == "retry_pending" and due_at is not None:
                if due_at - now <= MAX_DELAY_SECONDS:
                    self._queue.schedule(pk, due_at - now)
                return True  # a longer wait is the sweep's: the due index holds it
            if status == "failed":
                self._queue.dead_letter(pk, final.message, attempts)
        except QueueUnavailable as exc:
            logger.error("retry queue unavailable", extra={"conversion_id": pk, "error": str(exc)})
        return False

    def retry(self, conversion_id: str) -> Outcome | None:
        """The retry worker's attempt at one conversion; None when it is not (or no longer) due: sent in the
        meantime, claimed by another sender, or waiting for a later time the sweep will bring it back at."""
        secrets = self._current_secrets()  # before the claim: a claim without a key would only strand it
        try:
            claim = self._store.claim(conversion_id, self.settings.send_lease_seconds, due_only=True)
        except StoreUnavailable as exc:
            raise Unavailable(str(exc)) from None
        if claim is None:
            return None
        return self._send(conversion_id, claim, secrets)

    def sweep(self, limit: int = 500) -> int:
        """Re-queue every conversion whose due time passed more than the grace period ago: a lost message, a
        sender that died holding its lease, a wait longer than SQS can delay. Returns how many were queued."""
        if self._queue is None:
            return 0
        try:
            due = self._store.due(self._clock() - self.settings.sweep_grace_seconds, limit)
        except StoreUnavailable as exc:
            raise Unavailable(str(exc)) from None
        for conversion_id in due:
            self._queue.schedule(conversion_id, 0)
        if due:
            logger.warning("sweep re-queued stranded conversions", extra={"count": len(due)})
        return len(due)

    def _reverse(self, reversal: Reversal) -> Outcome:
        fields = {
            "reversal_amount": format(reversal.amount.amount, "f") if reversal.amount else None,
            "reversal_currency": reversal.amount.currency if reversal.amount else None,
        }
        pk = self._store.mark_reversal(reversal.identities, reversal.kind, reversal.event_id, fields)
        if pk is None:
            reason = "no recorded purchase for this reversal"
            return Outcome(200, "ignored", {"status": "ignored", "reason": reason})
        logger.info("conversion reversed", extra={"conversion_id": pk, "reversal": reversal.kind})
        return Outcome(200, reversal.kind, {"status": reversal.kind, "conversion_id": pk}, pk)


def _tag_logs(correlation_id: str) -> None:
    """Put the platform's event id on every later log line of the invocation (the handler's Logger clears it
    per invocation). Without a handler's Logger (a script, a test) there is nothing to tag."""
    with contextlib.suppress(OrphanedChildLoggerError):
        logger.set_correlation_id(correlation_id)
