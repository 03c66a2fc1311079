"""The moto-backed AWS resources of one test (the `aws` fixture of tests/conftest.py), and shortcuts to read
and change them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from postback_relay_dev.moto_server import SerializedMotoServer
from postback_relay_dev.resources import put_secret


@dataclass
class Aws:
    """The moto-backed resources of one test, and shortcuts to read and change them."""

    server: SerializedMotoServer
    dynamodb: Any
    secretsmanager: Any
    sqs: Any
    table_name: str
    secret_id: str
    retry_url: str
    dead_letter_url: str

    def record(self, pk: str) -> dict[str, Any] | None:
        from boto3.dynamodb.types import TypeDeserializer

        item = self.dynamodb.get_item(TableName=self.table_name, Key={"pk": {"S": pk}}, ConsistentRead=True)
        raw = item.get("Item")
        return {k: TypeDeserializer().deserialize(v) for k, v in raw.items()} if raw else None

    def items(self) -> list[dict[str, Any]]:
        from boto3.dynamodb.types import TypeDeserializer

        pages = self.dynamodb.get_paginator("scan").paginate(TableName=self.table_name, ConsistentRead=True)
        deserializer = TypeDeserializer()
        return [{k: deserializer.deserialize(v) for k, v in item.items()} for page in pages for item in page["Items"]]

    def raw_items(self) -> list[dict[str, Any]]:
        pages = self.dynamodb.get_paginator("scan").paginate(TableName=self.table_name, ConsistentRead=True)
        return [item for page in pages for item in page["Items"]]

    def put_secret(self, values: dict[str, Any]) -> None:
        put_secret(self.secretsmanager, self.secret_id, values)

    def queued(self, url: str | None = None) -> list[dict[str, Any]]:
        """One (empty) entry per message waiting in a queue, visible or delayed (default: the retry queue):
        SQS shows no body without consuming the message, so only the count is real."""
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=url or self.retry_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed"],
        )["Attributes"]
        return [
            {}
            for _ in range(
                int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesDelayed"])
            )
        ]

    def drain(self, rounds: int = 20) -> int:
        """Run the retry worker over the retry queue until it is empty (at most ``rounds`` batches, since a
        TrafficStars still down re-queues); how many messages it took."""
        from postback_relay_dev.worker import drain_once

        total = 0
        for _ in range(rounds):
            received = drain_once(self.sqs, self.retry_url)
            if not received and self.delayed():
                # SQS delays whole seconds, rounded up so no message is early: wait for the next one.
                received = drain_once(self.sqs, self.retry_url, wait_seconds=2)
            total += received
            if not received:
                break
        return total

    def delayed(self) -> int:
        """Messages of the retry queue not yet visible (their DelaySeconds is running)."""
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.retry_url, AttributeNames=["ApproximateNumberOfMessagesDelayed"]
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessagesDelayed"])

    def calls(self, target: str) -> int:
        """How many requests moto received for an API action, e.g. 'secretsmanager.GetSecretValue'."""
        return sum(1 for call in self.server.calls if call.lower().endswith(target.lower()))
