"""Sign a sample event from events/ with the current time and POST it to the local (or a deployed) relay,
then show the answer and, for the local run, the conversion's record and what TrafficStars received.

    python -m postback_relay_dev.send events/stripe/checkout.session.completed.json [--url URL]
    python -m postback_relay_dev.send --write events/stripe/*.json   # refresh signatures in place

Tracker postbacks (events/tracker/) have no signature: their token is the secret itself, so it is added
(as X-Postback-Token) only to the request being sent and never written into a file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import requests

from postback_relay.ops.delivery import Delivery
from postback_relay.platforms import ROUTED, RequestSource, WebhookSource
from postback_relay_dev import defaults
from postback_relay_dev.front import redact_query


def _source(delivery: Delivery) -> WebhookSource | RequestSource:
    if delivery.route not in ROUTED:
        raise SystemExit(f"{delivery.path}: no signer for this route (known: {', '.join(ROUTED)})")
    return ROUTED[delivery.route]


def _signed(event: dict[str, Any], timestamp: int | None = None, secret: str | None = None) -> Delivery:
    """The event's request with fresh signature headers, made with ``secret`` (default: the local secret, or
    its environment override)."""
    delivery = Delivery.from_event(event)
    field = _source(delivery).secret_field
    return delivery.signed(secret if secret is not None else defaults.secret_values()[field], timestamp)


def resign(event: dict[str, Any], timestamp: int | None = None, secret: str | None = None) -> dict[str, Any]:
    """The event with fresh signature headers, made with ``secret`` (default: the local secret, or its
    environment override)."""
    signed = _signed(event, timestamp, secret)
    return {**event, "headers": dict(signed.headers), "rawQueryString": signed.raw_query}


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("events", nargs="+", type=Path, help="API Gateway event files from events/")
    parser.add_argument(
        "--url",
        default=f"http://{defaults.HOST}:{defaults.port('PORT', 3000)}",
        help="base URL of the relay (default: the local run)",
    )
    parser.add_argument("--write", action="store_true", help="rewrite the files with fresh signatures, send nothing")
    args = parser.parse_args(argv)
    for path in args.events:
        original = json.loads(path.read_text(encoding="utf-8"))
        if args.write:
            if _source(Delivery.from_event(original)).signature_carries_secret:
                print(f"left {path} as it is: its token is added only when it is sent")
                continue
            path.write_text(json.dumps(resign(original), indent=2) + "\n", encoding="utf-8")
            print(f"re-signed {path}")
            continue
        delivery = _signed(original)
        try:
            response = delivery.post(args.url)
        except requests.exceptions.SSLError as exc:  # a ConnectionError too, but not a relay that is down
            print(f"certificate verification failed at {args.url}: {exc}", file=sys.stderr)
            return 2
        except requests.ConnectionError:
            # The usual cause is that `make run` is not running: one line that says so, not a urllib3 traceback.
            print(
                f"nothing answers at {args.url}: start the relay with `make run` in another terminal "
                "(the same PORT), or pass --url",
                file=sys.stderr,
            )
            return 2
        print(f"{delivery.method} {redact_query(delivery.target)} -> {response.status_code} {response.text}")
        _show_local_state(response)
    return 0


def _show_local_state(response: requests.Response) -> None:
    try:
        conversion_id = response.json().get("conversion_id")
    except ValueError:
        return
    moto = f"http://{defaults.HOST}:{defaults.port('MOTO_PORT', 5005)}"
    if not conversion_id:
        return
    try:
        import boto3

        client = boto3.client(
            "dynamodb",
            endpoint_url=moto,
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )
        item = client.get_item(TableName=defaults.TABLE_NAME, Key={"pk": {"S": conversion_id}}).get("Item")
    except Exception as exc:  # noqa: BLE001 - the record is a courtesy; the answer above is what matters
        print(f"(record not shown: {type(exc).__name__})", file=sys.stderr)
        return
    if item:
        from boto3.dynamodb.types import TypeDeserializer

        record = {k: TypeDeserializer().deserialize(v) for k, v in sorted(item.items())}
        print("record:", json.dumps(record, indent=2, default=str))


if __name__ == "__main__":
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    sys.exit(main())
