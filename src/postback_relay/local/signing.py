"""Signs sample bodies the way each platform signs its webhooks (for `make send` and refreshed events)."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable

Signer = Callable[[bytes, str, int], dict[str, str]]


def stripe_headers(body: bytes, secret: str, timestamp: int) -> dict[str, str]:
    """Stripe-Signature: t={timestamp},v1={hex HMAC-SHA256 of "{timestamp}.{body}"}."""
    signature = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return {"Stripe-Signature": f"t={timestamp},v1={signature}"}


SIGNERS: dict[str, tuple[str, Signer]] = {
    # source name → (secret-JSON field, signer)
    "stripe": ("stripe_webhook_secret", stripe_headers),
}


def sign(source: str, body: bytes, secret: str, timestamp: int | None = None) -> dict[str, str]:
    """Signature headers for ``body`` from ``source``, made now unless ``timestamp`` is given."""
    _, signer = SIGNERS[source]
    return signer(body, secret, int(time.time()) if timestamp is None else timestamp)
