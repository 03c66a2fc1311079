"""Replay: re-drive the dead-letter queue, or re-send conversions chosen from the table, through the same
claim as every other attempt, so replaying twice still sends each conversion once. The command line is the
operator CLI's (`postback-relay replay dlq` and `postback-relay replay records`, in ops/cli/replay.py); this
module is what they run."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from postback_relay.aws.queue import QueueUnavailable, RetryQueue
from postback_relay.aws.store import ConversionStore
from postback_relay.core.record import REPLAYABLE as REPLAYABLE_STATUSES

REPLAYABLE = tuple(sorted(str(status) for status in REPLAYABLE_STATUSES))  # failed, rejected, retry_pending


@dataclass
class ReplayReport:
    """What a replay did (or, dry, would do)."""

    queued: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # conversion id → why (e.g. already sent)
    postbacks: dict[str, str] = field(default_factory=dict)  # conversion id → its postback URL, key redacted
    # reopened (due now), but SQS refused its message: the sweep queues it, as it does every due conversion
    deferred: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return {"queued": self.queued, "skipped": self.skipped, "deferred": self.deferred, "postbacks": self.postbacks}


Progress = Callable[[int, str], None]


def redrive_dead_letters(
    sqs: Any, store: ConversionStore, queue: RetryQueue, dry_run: bool = False, progress: Progress | None = None
) -> ReplayReport:
    """Move every message of the dead-letter queue back to the retry worker. Each conversion is reopened
    (failed → retry_pending) only if it is not sent; its message is deleted once queued or found done."""
    report = ReplayReport()
    if not queue.dead_letter_url:
        raise ValueError("no dead-letter queue configured (DEAD_LETTER_QUEUE_URL)")
    seen: set[str] = set()
    held: list[str] = []  # a dry run's receipts, released at the end so the messages are visible again at once
    try:
        _redrive(sqs, store, queue, dry_run, progress, report, seen, held)
    finally:
        for start in range(0, len(held), 10):
            entries = [
                {"Id": str(n), "ReceiptHandle": handle, "VisibilityTimeout": 0}
                for n, handle in enumerate(held[start : start + 10])
            ]
            sqs.change_message_visibility_batch(QueueUrl=queue.dead_letter_url, Entries=entries)
    return report


def _redrive(
    sqs: Any,
    store: ConversionStore,
    queue: RetryQueue,
    dry_run: bool,
    progress: Progress | None,
    report: ReplayReport,
    seen: set[str],
    held: list[str],
) -> None:
    while True:
        response = sqs.receive_message(
            QueueUrl=queue.dead_letter_url, MaxNumberOfMessages=10, WaitTimeSeconds=1, VisibilityTimeout=30
        )
        messages = response.get("Messages", [])
        if not messages:
            break
        for message in messages:
            conversion_id = str(json.loads(message["Body"]).get("conversion_id", ""))
            if conversion_id not in seen:  # the same conversion parked twice is replayed once
                seen.add(conversion_id)
                _replay_one(conversion_id, store, queue, dry_run, report)
                if progress:
                    progress(len(seen), conversion_id)
            if dry_run:
                held.append(message["ReceiptHandle"])
            else:
                sqs.delete_message(QueueUrl=queue.dead_letter_url, ReceiptHandle=message["ReceiptHandle"])
        if dry_run and all(str(json.loads(m["Body"]).get("conversion_id", "")) in seen for m in messages):
            break


def replay_records(
    store: ConversionStore,
    queue: RetryQueue,
    statuses: Iterable[str] = ("failed",),
    since: str | None = None,
    click_id: str | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> ReplayReport:
    """Re-send the conversions matching the filters whose status allows it (never one already sent)."""
    wanted = tuple(statuses)
    refused = [status for status in wanted if status not in REPLAYABLE]
    if refused:
        raise ValueError(f"cannot replay status {', '.join(refused)}: only {', '.join(REPLAYABLE)}")
    report = ReplayReport()
    for count, record in enumerate(store.select(wanted, since, click_id), start=1):
        _replay_one(str(record["pk"]), store, queue, dry_run, report, record)
        if progress:
            progress(count, str(record["pk"]))
    return report


def _replay_one(
    conversion_id: str,
    store: ConversionStore,
    queue: RetryQueue,
    dry_run: bool,
    report: ReplayReport,
    record: dict[str, Any] | None = None,
) -> None:
    record = record if record is not None else store.get(conversion_id)
    if record is None:
        report.skipped[conversion_id] = "no such conversion"
        return
    status = str(record.get("status"))
    if status not in REPLAYABLE:
        report.skipped[conversion_id] = f"status is {status}"
        return
    report.postbacks[conversion_id] = str(record.get("postback_url") or "(no click id: nothing would be sent)")
    if dry_run:
        report.queued.append(conversion_id)
        return
    if not store.reopen(conversion_id):
        report.skipped[conversion_id] = "changed meanwhile (sent or in flight)"
        return
    try:
        queue.schedule(conversion_id, 0)
    except QueueUnavailable as exc:
        report.deferred[conversion_id] = f"reopened, but {exc}: the sweep queues it within its schedule"
        return
    report.queued.append(conversion_id)
