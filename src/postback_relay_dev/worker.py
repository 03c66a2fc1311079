"""What Lambda's SQS event source mapping and the schedule do, for `make run` and the tests: poll the retry
queue, hand batches to the retry handler as SQS events, delete what succeeded, and run the sweep on a timer."""

from __future__ import annotations

import threading
from typing import Any

from postback_relay_dev.apigw import LocalContext


def sqs_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    """An SQS event as Lambda delivers it."""
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": message.get("Attributes", {}),
                "messageAttributes": {},
                "md5OfBody": message.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": "us-east-1",
            }
            for message in messages
        ]
    }


def drain_once(sqs: Any, queue_url: str, wait_seconds: int = 0) -> int:
    """Receive one batch, run the retry handler, delete the messages it did not report failed.
    Returns how many messages were received."""
    from postback_relay.handlers.retry import retry_handler

    response = sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_seconds, AttributeNames=["All"]
    )
    messages = response.get("Messages", [])
    if not messages:
        return 0
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    result = retry_handler(sqs_event(messages, arn), LocalContext(function_name="RetryFunction", timeout_s=30))
    failed = {item["itemIdentifier"] for item in result.get("batchItemFailures", [])}
    for message in messages:
        if message["MessageId"] not in failed:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return len(messages)


def sweep_once() -> int:
    """Run the sweep handler once; returns how many conversions it re-queued."""
    from postback_relay.handlers.retry import sweep_handler

    return int(sweep_handler({}, LocalContext(function_name="SweepFunction", timeout_s=60))["requeued"])


def reconcile_once() -> list[dict[str, Any]]:
    """Run the scheduled reconciliation once (ReconcileFunction's handler); returns what each platform came to.
    A platform without its read-only key in the local secret is not read."""
    from postback_relay.handlers.reconcile import reconcile_handler

    runs: list[dict[str, Any]] = reconcile_handler({}, LocalContext(function_name="ReconcileFunction", timeout_s=900))[
        "runs"
    ]
    return runs


class LocalPipeline:
    """Background threads: the worker long-polls the retry queue; the sweep runs every ``sweep_interval``, the
    scheduled reconciliation every ``reconcile_interval`` (as ReconcileSchedule does in a stack)."""

    def __init__(self, sqs: Any, queue_url: str, sweep_interval: float, reconcile_interval: float = 3600.0) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._sweep_interval = sweep_interval
        self._reconcile_interval = reconcile_interval
        self._stop = threading.Event()
        self._lock = threading.Lock()  # one invocation at a time, as one container runs them
        self._threads = [
            threading.Thread(target=self._poll, name="retry-worker", daemon=True),
            threading.Thread(target=self._sweep, name="sweep", daemon=True),
            threading.Thread(target=self._reconcile, name="reconcile", daemon=True),
        ]

    def start(self) -> LocalPipeline:
        """Start the threads; returns self."""
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        """Stop the threads (within a poll interval)."""
        self._stop.set()
        for thread in self._threads:
            thread.join(5)

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                with self._lock:
                    received = drain_once(self._sqs, self._queue_url)
            except Exception as exc:  # noqa: BLE001 - a local loop must outlive one bad batch, as Lambda does
                print(f"retry worker: {type(exc).__name__}: {exc}", flush=True)
                received = 0
            if not received:
                self._stop.wait(0.5)

    def _sweep(self) -> None:
        while not self._stop.wait(self._sweep_interval):
            try:
                with self._lock:
                    sweep_once()
            except Exception as exc:  # noqa: BLE001
                print(f"sweep: {type(exc).__name__}: {exc}", flush=True)

    def _reconcile(self) -> None:
        while not self._stop.wait(self._reconcile_interval):
            try:
                with self._lock:
                    runs = reconcile_once()
            except Exception as exc:  # noqa: BLE001
                print(f"reconcile: {type(exc).__name__}: {exc}", flush=True)
                continue
            for run in runs:
                found = f", {run['recovered']} recovered" if "recovered" in run else ""
                print(f"reconcile: {run['tenant']} {run['source']} {run['result']}{found}", flush=True)
