"""What a webhook source is, the errors it raises, and the constant-time HMAC helpers every source shares."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from postback_relay.conversion import ParsedEvent
from postback_relay.settings import Settings


class SignatureError(Exception):
    """The request is not signed by the platform (missing header, stale timestamp). Answered 401."""


class SignatureMismatch(SignatureError):
    """The signature does not match any configured secret; a rotated secret may explain it, so refetch once."""


class MalformedEvent(ValueError):
    """A signed body that is not the platform's event shape. Answered 400."""


class WebhookSource(Protocol):
    """A platform that sends conversion webhooks."""

    name: str
    secret_field: str  # the key of this source's signing secret in the relay's Secrets Manager JSON

    def verify(
        self, raw_body: bytes, headers: Mapping[str, str], secrets: Sequence[str], now: float, tolerance: int
    ) -> None:
        """Raise SignatureError unless ``raw_body`` is signed with one of ``secrets``."""

    def parse(self, payload: Any, settings: Settings) -> ParsedEvent:
        """Map a verified, JSON-decoded event to a conversion, a reversal or an ignored event."""


def hmac_sha256(secret: str, message: bytes) -> bytes:
    """HMAC-SHA256 digest of ``message`` keyed with the UTF-8 bytes of ``secret``."""
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest()


def matches_hex(secrets: Sequence[str], message: bytes, signatures: Sequence[str]) -> bool:
    """True when any signature is the hex HMAC of ``message`` under any secret; every pair is compared in
    constant time, so the answer's timing says nothing about how close a forgery came."""
    candidates = [signature.strip().lower().encode("ascii", "replace") for signature in signatures]
    found = False
    for secret in secrets:
        expected = hmac_sha256(secret, message).hex().encode("ascii")
        for candidate in candidates:
            found |= hmac.compare_digest(expected, candidate)
    return found


def matches_base64(secrets: Sequence[str], message: bytes, signature: str) -> bool:
    """True when ``signature`` is the base64 HMAC of ``message`` under any secret, compared in constant time."""
    candidate = signature.strip().encode("ascii", "replace")
    found = False
    for secret in secrets:
        found |= hmac.compare_digest(base64.b64encode(hmac_sha256(secret, message)), candidate)
    return found


def dig(data: Any, *path: str) -> Any:
    """``data[path[0]][path[1]]…`` or None where any step is missing or not an object."""
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data
