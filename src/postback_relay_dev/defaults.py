"""The embedded defaults of the local run (no AWS account, no Docker). Demo values only, never real ones.

Its addresses and resource names are the operator CLI's too (postback_relay.ops.local_run); each platform's
demo secret is declared by its module (postback_relay.platforms)."""

from __future__ import annotations

import os

from postback_relay.networks.trafficstars import KEY_FIELD
from postback_relay.ops.local_run import HOST, QUEUE_PREFIX, SECRET_ID, TABLE_NAME, TENANT_SECRET_PREFIX, port
from postback_relay.platforms import BILLERS, ROUTED

DEMO_TRAFFICSTARS_KEY = "local-demo-trafficstars-key"

# Each secret-JSON field → (the environment variable that overrides its demo value: the field's name in upper
# case, the demo value): the TrafficStars key, then every routed platform's signing secret.
SECRET_FIELDS = {
    field: (field.upper(), demo)
    for field, demo in [
        (KEY_FIELD, DEMO_TRAFFICSTARS_KEY),
        *((source.secret_field, source.demo_secret) for source in ROUTED.values()),
    ]
}


# The local run's requests come from loopback (`make send`, curl); a biller's allowlist admits it there too.
LOOPBACK = ("127.0.0.0/8", "::1/128")


def local_allowlists() -> dict[str, str]:
    """Each biller's `<PLATFORM>_ALLOWED_IPS` in the local run: its published ranges and loopback."""
    return {
        f"{source.name.upper()}_ALLOWED_IPS": ",".join((*source.published_ips, *LOOPBACK))
        for source in BILLERS.values()
    }


def reconcile_fields() -> tuple[str, ...]:
    """Every platform's read-only reconcile credential field (relay/reconciling.PLATFORMS): none has a demo
    value, so the local secret holds one only when its environment variable (its upper-case name) is set."""
    from postback_relay.relay.reconciling import PLATFORMS

    return tuple(field for platform in PLATFORMS.values() for field in platform.fields)


def secret_values() -> dict[str, str]:
    """The local secret's JSON, each value taken from its environment variable when set, and each reconcile
    credential (STRIPE_API_KEY, SHOPIFY_ADMIN_TOKEN, …) whose variable is set."""
    values = {field: os.environ.get(variable, default) for field, (variable, default) in SECRET_FIELDS.items()}
    values.update({field: os.environ[field.upper()] for field in reconcile_fields() if field.upper() in os.environ})
    return values


__all__ = [
    "DEMO_TRAFFICSTARS_KEY",
    "HOST",
    "QUEUE_PREFIX",
    "SECRET_FIELDS",
    "SECRET_ID",
    "TABLE_NAME",
    "TENANT_SECRET_PREFIX",
    "local_allowlists",
    "port",
    "secret_values",
]
