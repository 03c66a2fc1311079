"""One attempt at a postback and what follows from its answer: sent, rejected (final), or retry_pending with
its next due time (queued), or failed when the retry window is spent; the retry worker's attempts and the
sweep that re-queues what a lost message or a crashed sender stranded.

The postback is built here once, from the typed record: the record is the truth, a message carries its key."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.exceptions import OrphanedChildLoggerError

from postback_relay.aws.queue import QueueUnavailable, RetryQueue
from postback_relay.aws.secrets import RelaySecrets, SecretKeyMissing, SecretStore
from postback_relay.aws.store import Claim, ConversionStore, StoreUnavailable
from postback_relay.core.backoff import RetryPolicy, next_attempt_at, parse_retry_after
from postback_relay.core.outcome import Answer, Outcome, Unavailable
from postback_relay.core.ratelimit import TokenBucket
from postback_relay.core.record import IN_FLIGHT, OUTCOME_STATUS, Status, iso
from postback_relay.networks.trafficstars import TrafficStarsClient

logger = Logger(child=True)


class Sender:
    """Attempts postbacks under a claim and schedules what is still to be tried."""

    def __init__(
        self,
        store: ConversionStore,
        client: TrafficStarsClient,
        secrets: SecretStore,
        queue: RetryQueue | None,
        retry_policy: RetryPolicy,
        lease_seconds: int,
        sweep_grace_seconds: int,
        clock: Callable[[], float],
        retry_rate: TokenBucket | None = None,
    ) -> None:
        self._store = store
        self._client = client
        self._secrets = secrets
        self._queue = queue
        self._retry_policy = retry_policy
        self._lease_seconds = lease_seconds
        self._sweep_grace_seconds = sweep_grace_seconds
        self._clock = clock
        self._retry_rate = retry_rate

    def send(self, pk: str, claim: Claim, secrets: RelaySecrets, event_id: str | None = None) -> Outcome:
        """One attempt under ``claim``: the GET (and one more after a refetched key), then its outcome:
        sent, rejected (final), or retry_pending with its next due time (queued), or failed when the
        retry window is spent (parked in the dead-letter queue first, so no failed record lacks its
        message). ``event_id`` is the delivery's (None on a retry)."""
        record = claim.record
        correlation_id = event_id or record.correlation_id or record.first_event_id
        if event_id is None and correlation_id:
            tag_logs(correlation_id)  # no delivery (a retry): the conversion's own id
        postback = self._client.postback(
            str(record.click_id), str(record.lead_code), Decimal(record.value) if record.value else None, record.goal
        )
        try:
            key = secrets.value(self._client.key_field)
        except SecretKeyMissing as exc:
            answers: tuple[Answer, ...] = (Answer("retryable", None, str(exc), "key_missing"),)
        else:
            answer = self._client.send(postback, key)
            answers = (answer,)
            if answer.kind == "invalid_key":
                refreshed = self._secrets.refresh()  # the key may have been rotated in Secrets Manager
                refreshed_key = _key_in(refreshed, self._client.key_field)
                if refreshed_key is not None and refreshed_key != key:
                    answers += (self._client.send(postback, refreshed_key),)
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
        return Outcome(str(status), body, pk, answers, sent_value, attempt=record.attempts, redeliver=unsettled)

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

    def retry(self, conversion_id: str, secrets: RelaySecrets, message_due_at: float | None = None) -> Outcome | None:
        """The retry worker's attempt at one conversion; None when it is not (or no longer) due: finished or
        reversed meanwhile, or held by another sender. A message that arrives before its conversion is due
        (``message_due_at``, the due time it was queued for, is still the record's) is put back with the
        remaining delay rather than dropped. Past the tenant's retry rate, the message is put back for when
        the rate allows, unclaimed, so the worker goes on with other tenants' conversions."""
        wait = self._retry_rate.take() if self._retry_rate is not None and self._queue is not None else 0.0
        if wait > 0 and self._queue is not None:
            self._queue.schedule(conversion_id, wait, message_due_at)
            logger.info("retry rate reached: put back", extra={"conversion_id": conversion_id, "wait_seconds": wait})
            return None
        try:
            claimed = self._store.claim(conversion_id, self._lease_seconds)
        except StoreUnavailable as exc:
            raise Unavailable(str(exc)) from None
        if isinstance(claimed, Claim):
            return self.send(conversion_id, claimed, secrets)
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
            for due in self._store.due(self._clock() - self._sweep_grace_seconds):
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


def _key_in(secrets: RelaySecrets | None, field: str) -> str | None:
    """The network's key in a refetched secret, None when there is none to try."""
    if secrets is None:
        return None
    try:
        return secrets.value(field)
    except SecretKeyMissing:
        return None


def tag_tenant(tenant: str) -> None:
    """Name the tenant in every later log line of the invocation (a shared route learns it only from the
    verified event). Without a handler's Logger there is nothing to tag."""
    with contextlib.suppress(OrphanedChildLoggerError):
        logger.append_keys(tenant=tenant)


def tag_logs(correlation_id: str) -> None:
    """Put the platform's event id on every later log line of the invocation (the handler's Logger clears it
    per invocation). Without a handler's Logger (a script, a test) there is nothing to tag."""
    with contextlib.suppress(OrphanedChildLoggerError):
        logger.set_correlation_id(correlation_id)
