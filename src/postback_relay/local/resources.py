"""Creates the relay's AWS resources in moto, shaped as template.yaml shapes them."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from postback_relay.local.template import load_template, table_definition


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
