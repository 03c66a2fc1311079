"""The floor: a hand-written handler that does the relay's I/O for a Stripe conversion and nothing else.

Verify the Stripe signature (HMAC-SHA256), one conditional PutItem, one GET to TrafficStars, one UpdateItem
with its answer. Same libraries (boto3, requests), same secret cached per container, no framework, no
logging, no metrics, no validation beyond what the I/O needs. Never deployed; it exists to be measured."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from typing import Any

import boto3
import requests

_clients: dict[str, Any] = {}


def _setup() -> dict[str, Any]:
    """Clients, session and secret once per container, as any sensible handler does."""
    if not _clients:
        session = boto3.session.Session()
        secretsmanager = session.client("secretsmanager")
        _clients["dynamodb"] = session.client("dynamodb")
        _clients["http"] = requests.Session()
        secret = json.loads(secretsmanager.get_secret_value(SecretId=os.environ["SECRET_ID"])["SecretString"])
        _clients["secret"] = secret
    return _clients


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """API Gateway HTTP API event in, proxy response out."""
    clients = _setup()
    secret = clients["secret"]
    body: bytes = event["body"].encode()
    parts = dict(item.split("=", 1) for item in event["headers"]["stripe-signature"].split(","))
    expected = hmac.new(secret["stripe_webhook_secret"].encode(), parts["t"].encode() + b"." + body, hashlib.sha256)
    if abs(time.time() - int(parts["t"])) > 300 or not hmac.compare_digest(expected.hexdigest(), parts["v1"]):
        return {"statusCode": 401, "body": '{"error":"invalid_signature"}'}
    obj = json.loads(body)["data"]["object"]
    pk = "stripe#" + obj["payment_intent"]
    click_id = obj["client_reference_id"]
    value = f"{obj['amount_total'] / 100:.2f}"
    lead_code = hashlib.sha256(pk.encode()).hexdigest()[:32]
    table = os.environ["TABLE_NAME"]
    try:
        clients["dynamodb"].put_item(
            TableName=table,
            Item={
                "pk": {"S": pk},
                "status": {"S": "sending"},
                "click_id": {"S": click_id},
                "value": {"S": value},
                "lead_code": {"S": lead_code},
                "received_at": {"N": str(time.time())},
            },
            ConditionExpression="attribute_not_exists(pk)",
        )
    except clients["dynamodb"].exceptions.ConditionalCheckFailedException:
        return {"statusCode": 200, "body": '{"status":"duplicate"}'}
    url = f"{os.environ['TRAFFICSTARS_URL']}/{click_id}"
    params = {"value": value, "lead_code": lead_code, "key": secret["trafficstars_key"]}
    response = clients["http"].get(url, params=params, timeout=(1.0, 2.5), allow_redirects=False)
    status = "sent" if response.status_code == 200 and response.json().get("ok") is True else "failed"
    clients["dynamodb"].update_item(
        TableName=table,
        Key={"pk": {"S": pk}},
        UpdateExpression="SET #s = :s, answer = :a",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": {"S": status}, ":a": {"S": response.text[:300]}},
    )
    return {"statusCode": 200, "body": json.dumps({"status": status})}


def reset() -> None:
    """Forget the container's clients (a new container)."""
    _clients.clear()
