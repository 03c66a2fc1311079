"""Creates the relay's AWS resources in moto, shaped as template.yaml shapes them."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from postback_relay_dev.template import load_template, queue_attributes, table_definition


def create_table(dynamodb: Any, table_name: str) -> None:
    """The conversions table with the template's key schema, indexes and TTL attribute."""
    definition = table_definition(load_template())
    extra = (
        {"GlobalSecondaryIndexes": definition["GlobalSecondaryIndexes"]} if definition["GlobalSecondaryIndexes"] else {}
    )
    dynamodb.create_table(
        TableName=table_name,
        KeySchema=definition["KeySchema"],
        AttributeDefinitions=definition["AttributeDefinitions"],
        BillingMode=definition["BillingMode"],
        **extra,
    )
    if definition["TimeToLiveAttribute"]:
        dynamodb.update_time_to_live(
            TableName=table_name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": definition["TimeToLiveAttribute"]},
        )


def put_secret(secretsmanager: Any, secret_id: str, values: Mapping[str, Any]) -> str:
    """Create (or overwrite) the relay's JSON secret; returns its ARN."""
    try:
        response = secretsmanager.create_secret(Name=secret_id, SecretString=json.dumps(dict(values)))
    except secretsmanager.exceptions.ResourceExistsException:
        response = secretsmanager.put_secret_value(SecretId=secret_id, SecretString=json.dumps(dict(values)))
    return str(response["ARN"])


def create_queues(sqs: Any, prefix: str) -> tuple[str, str]:
    """The retry queue and its dead-letter queue, with the template's attributes and redrive policy."""
    template = load_template()
    dead_letter_url = sqs.create_queue(
        QueueName=f"{prefix}-dlq", Attributes=queue_attributes(template, "DeadLetterQueue")
    )["QueueUrl"]
    dead_letter_arn = sqs.get_queue_attributes(QueueUrl=dead_letter_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    redrive = template["Resources"]["RetryQueue"]["Properties"]["RedrivePolicy"]
    attributes = queue_attributes(template, "RetryQueue")
    attributes["RedrivePolicy"] = json.dumps(
        {"deadLetterTargetArn": dead_letter_arn, "maxReceiveCount": str(redrive["maxReceiveCount"])}
    )
    retry_url = sqs.create_queue(QueueName=f"{prefix}-retry", Attributes=attributes)["QueueUrl"]
    return str(retry_url), str(dead_letter_url)
