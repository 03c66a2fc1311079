"""The floor: a hand-written handler that does the relay's I/O for a Stripe conversion and nothing else.

Verify the Stripe signature (HMAC-SHA256), one conditional PutItem, one GET to TrafficStars, one UpdateItem
with its answer: same libraries (boto3, requests) with their defaults, the secret fetched once per container,
no framework, no logging, no metrics, no validation beyond what the I/O needs. It writes the same record as
the relay (the same attributes, of the same sizes), because the record is what the relay is for: with a
smaller item the comparison would measure the data, not the code. Never deployed; it exists to be measured."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
import uuid
from datetime import UTC, datetime
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


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat(timespec="milliseconds")


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """API Gateway HTTP API event in, proxy response out."""
    clients = _setup()
    secret = clients["secret"]
    body: bytes = event["body"].encode()
    parts = dict(item.split("=", 1) for item in event["headers"]["stripe-signature"].split(","))
    expected = hmac.new(secret["stripe_webhook_secret"].encode(), parts["t"].encode() + b"." + body, hashlib.sha256)
    if abs(time.time() - int(parts["t"])) > 300 or not hmac.compare_digest(expected.hexdigest(), parts["v1"]):
        return {"statusCode": 401, "body": '{"error":"invalid_signature"}'}
    payload = json.loads(body)
    obj = payload["data"]["object"]
    pk = "stripe#" + obj["payment_intent"]
    click_id = obj["client_reference_id"]
    value = f"{obj['amount_total'] / 100:.2f}"
    lead_code = hashlib.sha256(pk.encode()).hexdigest()[:32]
    url = f"{os.environ['TRAFFICSTARS_URL']}/{click_id}"
    table = os.environ["TABLE_NAME"]
    now = time.time()
    token = uuid.uuid4().hex
    try:
        clients["dynamodb"].put_item(
            TableName=table,
            Item={
                "pk": {"S": pk},
                "source": {"S": "stripe"},
                "purchase_id": {"S": obj["payment_intent"]},
                "status": {"S": "sending"},
                "first_event_id": {"S": payload["id"]},
                "correlation_id": {"S": payload["id"]},
                "livemode": {"BOOL": True},
                "click_id": {"S": click_id},
                "amount": {"S": value},
                "currency": {"S": obj["currency"].upper()},
                "value": {"S": value},
                "value_currency": {"S": "USD"},
                "goal": {"S": "purchase"},
                "lead_code": {"S": lead_code},
                "postback_url": {"S": f"{url}?value={value}&lead_code={lead_code}&key=***"},
                "received_at": {"S": _iso(now)},
                "created_epoch": {"N": str(int(now))},
                "attempts": {"N": "1"},
                "deliveries": {"N": "1"},
                "lease_token": {"S": token},
                "lease_until": {"N": str(round(now + 30, 3))},
                "due_shard": {"S": "due"},
                "due_at": {"N": str(round(now + 30, 3))},
                "event_ids": {"SS": [payload["id"]]},
                "event_types": {"SS": [payload["type"]]},
                "updated_at": {"S": _iso(now)},
                "expires_at": {"N": str(int(now) + 90 * 86400)},
            },
            ConditionExpression="attribute_not_exists(pk)",
        )
    except clients["dynamodb"].exceptions.ConditionalCheckFailedException:
        return {"statusCode": 200, "body": '{"status":"duplicate"}'}
    params = {"value": value, "lead_code": lead_code, "key": secret["trafficstars_key"]}
    started = time.perf_counter()
    response = clients["http"].get(url, params=params, timeout=(1.0, 2.5), allow_redirects=False)
    duration = str(round((time.perf_counter() - started) * 1000, 1))
    status = "sent" if response.status_code == 200 and response.json().get("ok") is True else "failed"
    now = time.time()
    attempt = {
        "at": {"S": _iso(now)},
        "outcome": {"S": status},
        "http_status": {"N": str(response.status_code)},
        "message": {"S": response.text[:300]},
        "duration_ms": {"N": duration},
        "correlation_id": {"S": payload["id"]},
    }
    clients["dynamodb"].update_item(
        TableName=table,
        Key={"pk": {"S": pk}},
        UpdateExpression="SET #s = :s, #h = :h, #a = :a, #r = :r, #l = :l, #t = :t, #u = :u, "
        "#log = list_append(if_not_exists(#log, :empty), :entry) REMOVE #lt, #lu, #ds, #da",
        ConditionExpression="#lt = :token",
        ExpressionAttributeNames={
            "#s": "status",
            "#h": "trafficstars_http_status",
            "#a": "trafficstars_answer",
            "#r": "trafficstars_reason",
            "#l": "last_attempt_at",
            "#t": "sent_at",
            "#u": "updated_at",
            "#log": "attempt_log",
            "#lt": "lease_token",
            "#lu": "lease_until",
            "#ds": "due_shard",
            "#da": "due_at",
        },
        ExpressionAttributeValues={
            ":s": {"S": status},
            ":h": {"N": str(response.status_code)},
            ":a": {"S": response.text[:300]},
            ":r": {"S": "ok" if status == "sent" else "other"},
            ":l": {"S": _iso(now)},
            ":t": {"S": _iso(now)},
            ":u": {"S": _iso(now)},
            ":empty": {"L": []},
            ":entry": {"L": [{"M": attempt}]},
            ":token": {"S": token},
        },
    )
    return {"statusCode": 200, "body": json.dumps({"status": status})}


def reset() -> None:
    """Forget the container's clients (a new container)."""
    _clients.clear()
