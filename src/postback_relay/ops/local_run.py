"""The local run's well-known addresses (`make run`: moto, the relay's API front and the TrafficStars sandbox
on loopback) and its resource names: what `make run` creates and the operator CLI's --local finds, in one place.
The operator CLI needs them without the dev harness, which is never installed with the package."""

from __future__ import annotations

import os

HOST = "127.0.0.1"
TABLE_NAME = "postback-relay-local"
SECRET_ID = "postback-relay/local"  # noqa: S105 - the name of the local secret, not a secret
QUEUE_PREFIX = "postback-relay-local"  # its queues: <prefix>-retry and <prefix>-dlq
TENANT_SECRET_PREFIX = "postback-relay/local/tenants/"  # noqa: S105 - tenant T's secret is named this + T


def port(variable: str, default: int) -> int:
    """A port from the environment, with a clear error for a bad value."""
    raw = os.environ.get(variable, str(default))
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise SystemExit(f"{variable} must be a TCP port number, got {raw!r}")
    return int(raw)
