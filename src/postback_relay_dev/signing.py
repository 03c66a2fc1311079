"""Signs sample bodies the way each platform signs its webhooks (for `make send` and refreshed events)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from collections.abc import Callable

Signer = Callable[[bytes, str, int], dict[str, str]]


def _hmac(secret: str, message: bytes) -> bytes:
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest()


def stripe_headers(body: bytes, secret: str, timestamp: int) -> dict[str, str]:
    """Stripe-Signature: t={timestamp},v1={hex HMAC-SHA256 of "{timestamp}.{body}"}."""
    signature = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return {"Stripe-Signature": f"t={timestamp},v1={signature}"}


def shopify_headers(body: bytes, secret: str, timestamp: int) -> dict[str, str]:
    """X-Shopify-Hmac-Sha256: base64 HMAC-SHA256 of the body (no timestamp is signed)."""
    return {"X-Shopify-Hmac-Sha256": base64.b64encode(_hmac(secret, body)).decode("ascii")}


def woocommerce_headers(body: bytes, secret: str, timestamp: int) -> dict[str, str]:
    """X-WC-Webhook-Signature: base64 HMAC-SHA256 of the body (no timestamp is signed). WooCommerce's
    creation ping (`webhook_id=N`) is sent unsigned, so it gets no header."""
    if re.fullmatch(rb"webhook_id=[0-9]+", body.strip()):
        return {}
    return {"X-WC-Webhook-Signature": base64.b64encode(_hmac(secret, body)).decode("ascii")}


def paddle_headers(body: bytes, secret: str, timestamp: int) -> dict[str, str]:
    """Paddle-Signature: ts={timestamp};h1={hex HMAC-SHA256 of "{timestamp}:{body}"}."""
    return {"Paddle-Signature": f"ts={timestamp};h1={_hmac(secret, f'{timestamp}:'.encode() + body).hex()}"}


def lemonsqueezy_headers(body: bytes, secret: str, timestamp: int) -> dict[str, str]:
    """X-Signature: hex HMAC-SHA256 of the body (no timestamp is signed)."""
    return {"X-Signature": _hmac(secret, body).hex()}


def postback_headers(body: bytes, secret: str, timestamp: int) -> dict[str, str]:
    """X-Postback-Token: the token itself. Trackers have no signature; this header is the secret, so it is
    added only to requests being sent and never written into an event file."""
    return {"X-Postback-Token": secret}


SIGNERS: dict[str, tuple[str, Signer]] = {
    # the route's last path segment → (secret-JSON field, signer)
    "stripe": ("stripe_webhook_secret", stripe_headers),
    "shopify": ("shopify_webhook_secret", shopify_headers),
    "woocommerce": ("woocommerce_webhook_secret", woocommerce_headers),
    "paddle": ("paddle_webhook_secret", paddle_headers),
    "paddle-sandbox": ("paddle_sandbox_webhook_secret", paddle_headers),
    "lemonsqueezy": ("lemonsqueezy_webhook_secret", lemonsqueezy_headers),
    "postback": ("postback_token", postback_headers),
}
# Signers whose header carries the secret itself: never written to files.
SECRET_BEARING = frozenset({"postback"})


def sign(source: str, body: bytes, secret: str, timestamp: int | None = None) -> dict[str, str]:
    """Signature headers for ``body`` from ``source``, made now unless ``timestamp`` is given."""
    _, signer = SIGNERS[source]
    return signer(body, secret, int(time.time()) if timestamp is None else timestamp)
