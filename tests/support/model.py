"""What the model-based tests share (test_lifecycle_model.py, test_tenant_model.py): the relay's clock and SQS
modelled on it (delays, visibility, receive counts and the redrive to the dead-letter queue), the environment
both run the real handlers in, and how many scenarios of how many steps they run (MODEL_EXAMPLES, MODEL_STEPS)."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, settings

from postback_relay.runtime import reset_runtime
from postback_relay_dev.moto_server import SerializedMotoServer
from postback_relay_dev.sandbox import TrafficStarsSandbox

READ_TIMEOUT = 0.2  # seconds of real time a timeout or a lost answer costs
RETRY_URL = "https://sqs.model/retry"
DEAD_LETTER_URL = "https://sqs.model/dlq"
MAX_RECEIVES = 5  # the template's redrive policy


class Clock:
    """The relay's clock in this test: moves only when the model says."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@dataclass
class Message:
    id: str
    body: str
    visible_at: float
    receives: int = 0
    receipt: str = ""


@dataclass
class ModelSqs:
    """SQS on the model's clock: DelaySeconds, visibility timeouts, receive counts and the redrive policy.
    It notes any message sent to become visible before the due time it carries (there must be none)."""

    clock: Clock
    queues: dict[str, list[Message]] = field(default_factory=lambda: {RETRY_URL: [], DEAD_LETTER_URL: []})
    down: bool = False
    early: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _refuse(self) -> None:
        if self.down:
            raise ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "model outage"}}, "SendMessage")

    def send_message(self, QueueUrl: str, MessageBody: str, DelaySeconds: int = 0) -> dict[str, Any]:
        self._refuse()
        visible_at = self.clock.now + DelaySeconds
        due_at = json.loads(MessageBody).get("due_at")
        if due_at is not None and visible_at < float(due_at) - 0.001 and DelaySeconds < 900:
            self.early.append(f"{MessageBody} visible {float(due_at) - visible_at:.3f}s before it is due")
        with self.lock:
            self.queues[QueueUrl].append(Message(uuid.uuid4().hex, MessageBody, visible_at))
        return {"MessageId": "m"}

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        for entry in Entries:
            self.send_message(QueueUrl, entry["MessageBody"], entry.get("DelaySeconds", 0))
        return {"Successful": [{"Id": entry["Id"]} for entry in Entries]}

    def receive_message(
        self,
        QueueUrl: str,
        MaxNumberOfMessages: int = 10,
        VisibilityTimeout: int = 30,
        **_: Any,
    ) -> dict[str, Any]:
        taken = []
        with self.lock:
            for message in self.queues[QueueUrl]:
                if len(taken) == MaxNumberOfMessages:
                    break
                if message.visible_at <= self.clock.now:
                    message.receives += 1
                    message.receipt = uuid.uuid4().hex
                    message.visible_at = self.clock.now + VisibilityTimeout
                    taken.append(message)
        return {"Messages": [{"MessageId": m.id, "ReceiptHandle": m.receipt, "Body": m.body} for m in taken]}

    def delete_message(self, QueueUrl: str, ReceiptHandle: str) -> None:
        with self.lock:
            self.queues[QueueUrl] = [m for m in self.queues[QueueUrl] if m.receipt != ReceiptHandle]

    def change_message_visibility_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> None:
        handles = {entry["ReceiptHandle"] for entry in Entries}
        with self.lock:
            for message in self.queues[QueueUrl]:
                if message.receipt in handles:
                    message.visible_at = self.clock.now

    def redrive(self) -> None:
        """What SQS does to a message received MAX_RECEIVES times and still not deleted."""
        with self.lock:
            spent = [m for m in self.queues[RETRY_URL] if m.receives >= MAX_RECEIVES]
            self.queues[RETRY_URL] = [m for m in self.queues[RETRY_URL] if m.receives < MAX_RECEIVES]
            self.queues[DEAD_LETTER_URL] += [Message(m.id, m.body, self.clock.now) for m in spent]

    def parked(self) -> set[str]:
        return {json.loads(m.body)["conversion_id"] for m in self.queues[DEAD_LETTER_URL]}


@pytest.fixture
def model_env(
    moto_server: SerializedMotoServer, sandbox_server: TrafficStarsSandbox, ca_file: Any, monkeypatch: Any
) -> Iterator[tuple[SerializedMotoServer, TrafficStarsSandbox]]:
    for name, value in {
        "TRAFFICSTARS_URL": sandbox_server.base_url,
        "REQUESTS_CA_BUNDLE": str(ca_file),
        "AWS_ENDPOINT_URL": moto_server.endpoint,
        "RETRY_QUEUE_URL": RETRY_URL,
        "DEAD_LETTER_QUEUE_URL": DEAD_LETTER_URL,
        "TRAFFICSTARS_READ_TIMEOUT": str(READ_TIMEOUT),
        "RETRY_BASE_DELAY_SECONDS": "60",
        "RETRY_MAX_DELAY_SECONDS": "600",
        "RETRY_WINDOW_SECONDS": "7200",
        "SEND_LEASE_SECONDS": "30",
        "SWEEP_GRACE_SECONDS": "60",
    }.items():
        monkeypatch.setenv(name, value)
    yield moto_server, sandbox_server
    sandbox_server.state.reset()
    moto_server.fault = None
    reset_runtime()


def model_settings() -> settings:
    """How much the model-based tests run: MODEL_EXAMPLES scenarios (20) of MODEL_STEPS steps (30); `make soak`
    runs many more. No deadline: a step waits for real timeouts."""
    return settings(
        max_examples=int(os.environ.get("MODEL_EXAMPLES", "20")),
        stateful_step_count=int(os.environ.get("MODEL_STEPS", "30")),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )


def aws_client(service: str, endpoint: str) -> Any:
    """A boto3 client of moto server at ``endpoint`` (each scenario's own table and secret)."""
    import boto3

    return boto3.session.Session().client(service, endpoint_url=endpoint)
