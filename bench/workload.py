"""The webhooks the benchmark sends and the environment it runs the relay in: all on 127.0.0.1.

Bodies are the repository's own sample Stripe events (events/stripe/*.json), re-identified and re-signed,
so their size and shape are what Stripe sends."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from postback_relay.platforms import sign
from postback_relay_dev.apigw import build_event

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events" / "stripe"
TRAFFICSTARS_KEY = "bench-trafficstars-key-0001"
STRIPE_SECRET = "whsec_bench_secret_0001"
SECRET = {"trafficstars_key": TRAFFICSTARS_KEY, "stripe_webhook_secret": STRIPE_SECRET}


def relay_env(trafficstars_url: str, ca_file: str) -> dict[str, str]:
    """The relay's settings for a benchmark run. AWS is answered in-process (bench.fakeaws); the endpoint
    below is a closed loopback port, so a call the fake failed to answer errors instead of leaving the host."""
    return {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "SECRET_ID": "postback-relay/bench",
        "TABLE_NAME": "conversions-bench",
        "TRAFFICSTARS_URL": trafficstars_url,
        "REQUESTS_CA_BUNDLE": ca_file,
        "LOCAL_MODE": "true",
        "POWERTOOLS_SERVICE_NAME": "postback-relay",
        "POWERTOOLS_METRICS_NAMESPACE": "PostbackRelay",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_DEV": "false",
        "POWERTOOLS_LOG_LEVEL": "INFO",
    }


def _sample(event_type: str) -> tuple[dict[str, Any], dict[str, str]]:
    sample = json.loads((EVENTS / f"{event_type}.json").read_text())
    headers = {k: v for k, v in sample["headers"].items() if k not in ("stripe-signature", "content-length")}
    return json.loads(sample["body"]), headers


def stripe_webhook(event_type: str, event_id: str, tenant: str | None = None, **fields: Any) -> dict[str, Any]:
    """A signed API Gateway event carrying the sample ``event_type`` with its own event id and ``fields``
    set on its data.object (e.g. its own ``payment_intent``, so each one is a new purchase); to ``tenant``'s
    route when one is named (every tenant's secret is SECRET here)."""
    payload, headers = _sample(event_type)
    payload["id"] = event_id
    payload["data"]["object"].update(fields)
    body = json.dumps(payload, indent=2).encode()
    headers.update(sign("stripe", body, STRIPE_SECRET))
    path, route = (
        ("/webhooks/stripe", "/webhooks/stripe")
        if tenant is None
        else (f"/webhooks/{tenant}/stripe", "/webhooks/{tenant}/{platform}")
    )
    return build_event("POST", path, list(headers.items()), body, route_key=f"POST {route}")


def conversion(prefix: str, index: int, tenant: str | None = None, **fields: Any) -> dict[str, Any]:
    """A paid Checkout Session of its own purchase (``pi_{prefix}{index}``) with a valid click id."""
    purchase = f"pi_{prefix}{index:06d}"
    return stripe_webhook(
        "checkout.session.completed", f"evt_{prefix}{index:06d}", tenant, payment_intent=purchase, **fields
    )


def tenant_item(name: str, trafficstars_url: str) -> dict[str, Any]:
    """A tenant's configuration item, in DynamoDB's wire format, as `postback-relay tenant add` writes it."""
    from postback_relay.aws.tenants import to_item
    from postback_relay.aws.wire import to_wire
    from postback_relay.core.tenant import TenantConfig

    config = TenantConfig(name, frozenset({"stripe"}), {"TRAFFICSTARS_URL": trafficstars_url}, updated_at="bench")
    return {field: to_wire(value) for field, value in to_item(config).items()}


def conversions(prefix: str, count: int) -> list[dict[str, Any]]:
    """``count`` paid Checkout Sessions, each a different purchase."""
    return [conversion(prefix, i) for i in range(count)]


def ignored(count: int) -> list[dict[str, Any]]:
    """``count`` signed events of a type that is not a conversion (customer.created)."""
    return [stripe_webhook("customer.created", f"evt_ign{i:06d}") for i in range(count)]
