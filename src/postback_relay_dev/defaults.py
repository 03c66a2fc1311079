"""The embedded defaults of the local run (no AWS account, no Docker). Demo values only, never real ones."""

from __future__ import annotations

import os

HOST = "127.0.0.1"
TABLE_NAME = "postback-relay-local"
SECRET_ID = "postback-relay/local"
QUEUE_PREFIX = "postback-relay-local"  # its queues: <prefix>-retry and <prefix>-dlq
DEMO_TRAFFICSTARS_KEY = "local-demo-trafficstars-key"
DEMO_STRIPE_WEBHOOK_SECRET = "whsec_local_demo_secret"

# Each source's signing secret: secret-JSON field → environment variable that overrides the demo value
# (the field's name in upper case).
SECRET_FIELDS = {
    "trafficstars_key": ("TRAFFICSTARS_KEY", DEMO_TRAFFICSTARS_KEY),
    "stripe_webhook_secret": ("STRIPE_WEBHOOK_SECRET", DEMO_STRIPE_WEBHOOK_SECRET),
    "shopify_webhook_secret": ("SHOPIFY_WEBHOOK_SECRET", "shpss_local_demo_secret"),
    "woocommerce_webhook_secret": ("WOOCOMMERCE_WEBHOOK_SECRET", "wc_local_demo_secret"),
    "paddle_webhook_secret": ("PADDLE_WEBHOOK_SECRET", "pdl_ntfset_local_demo_secret"),
    "paddle_sandbox_webhook_secret": ("PADDLE_SANDBOX_WEBHOOK_SECRET", "pdl_ntfset_local_demo_sandbox_secret"),
    "lemonsqueezy_webhook_secret": ("LEMONSQUEEZY_WEBHOOK_SECRET", "ls_local_demo_secret"),
    "postback_token": ("POSTBACK_TOKEN", "local-demo-postback-token"),
}


def secret_values() -> dict[str, str]:
    """The local secret's JSON, each value taken from its environment variable when set."""
    return {field: os.environ.get(variable, default) for field, (variable, default) in SECRET_FIELDS.items()}


def port(variable: str, default: int) -> int:
    """A port from the environment, with a clear error for a bad value."""
    raw = os.environ.get(variable, str(default))
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise SystemExit(f"{variable} must be a TCP port number, got {raw!r}")
    return int(raw)
