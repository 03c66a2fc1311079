"""The SQS retry queue and dead-letter queue. Messages carry only the conversion's key: the record in
DynamoDB is the truth, so a duplicated, late or lost message can never send twice or lose a conversion."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from postback_relay.core.tenant import DEFAULT_TENANT, tenant_of

MAX_DELAY_SECONDS = 900  # SQS DelaySeconds ceiling; longer waits are found by the sweep


class QueueUnavailable(Exception):
    """SQS could not take the message."""


class RetryQueue:
    """Schedules conversions for the retry worker and parks the exhausted ones in the dead-letter queue."""

    def __init__(self, client: Any, queue_url: str, dead_letter_url: str | None) -> None:
        self._client = client
        self.queue_url = queue_url
        self.dead_letter_url = dead_letter_url

    def schedule(self, conversion_id: str, delay_seconds: float, due_at: float | None = None) -> None:
        """Ask the worker to try ``conversion_id`` in ``delay_seconds``, rounded up so the message is never
        visible before the conversion is due (SQS delays whole seconds, at most 15 minutes: a longer wait
        arrives early and the worker puts it back). ``due_at`` is the due time the message is for."""
        delay = max(0, min(MAX_DELAY_SECONDS, math.ceil(delay_seconds)))
        self._send(self.queue_url, _message(conversion_id, due_at), delay)

    def schedule_now(self, due: Sequence[tuple[str, float]]) -> int:
        """Queue up to ten (conversion id, due time) pairs at once (the sweep); how many SQS took."""
        entries = [
            {"Id": str(n), "MessageBody": json.dumps(_message(pk, due_at))} for n, (pk, due_at) in enumerate(due)
        ]
        try:
            response = self._client.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
        except (ClientError, BotoCoreError) as exc:
            raise QueueUnavailable(f"SQS send_message_batch failed: {type(exc).__name__}") from None
        return len(response.get("Successful", []))

    def dead_letter(self, conversion_id: str, reason: str, attempts: int) -> None:
        """Park an exhausted conversion where an alarm watches and `replay dlq` finds it."""
        if self.dead_letter_url:
            body = {**_message(conversion_id, None), "reason": reason, "attempts": attempts}
            self._send(self.dead_letter_url, body, 0)

    def _send(self, url: str, body: dict[str, Any], delay: int) -> None:
        try:
            self._client.send_message(QueueUrl=url, MessageBody=json.dumps(body), DelaySeconds=delay)
        except (ClientError, BotoCoreError) as exc:
            raise QueueUnavailable(f"SQS send_message failed: {type(exc).__name__}") from None


def _message(conversion_id: str, due_at: float | None) -> dict[str, Any]:
    """A retry message. A named tenant's carries its name (its key says it too: the worker reads the key),
    so a queue's messages can be told apart by tenant without reading the table."""
    body: dict[str, Any] = {"conversion_id": conversion_id}
    tenant = tenant_of(conversion_id)
    if tenant != DEFAULT_TENANT:
        body["tenant"] = tenant
    if due_at is not None:
        body["due_at"] = round(due_at, 3)
    return body
