"""What a webhook source is, the errors it raises, and the HMAC helpers every source shares: the same digest
signs (`make send`, the operator CLI's `sign`, the tests) and verifies (constant-time), as svix and Standard
Webhooks keep signing and verifying in one class."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol, runtime_checkable
from urllib.parse import parse_qsl, urlsplit

from postback_relay.core.conversion import ParseContext, ParsedEvent
from postback_relay.core.money import ISO_EXPONENTS, Money, from_minor_units

MAX_TIMESTAMP_DIGITS = 12  # epoch seconds until the year 33658: anything longer is no plausible timestamp


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
    # The local run's value of that field (`make run`; the field's name in upper case overrides it): a demo value.
    demo_secret: str
    # True when the signature header is the secret itself (a tracker's token): such a signed request is sent,
    # never written into an event file.
    signature_carries_secret: bool

    def verify(
        self, raw_body: bytes, headers: Mapping[str, str], secrets: Sequence[str], now: float, tolerance: int
    ) -> None:
        """Raise SignatureError unless ``raw_body`` is signed with one of ``secrets``."""

    def sign(self, body: bytes, secret: str, timestamp: int) -> dict[str, str]:
        """The headers the platform would send with ``body`` signed with ``secret`` at ``timestamp`` (epoch
        seconds; sources that sign no timestamp ignore it): what ``verify`` accepts."""

    def parse(self, payload: Any, context: ParseContext) -> ParsedEvent:
        """Map a verified, JSON-decoded event to a conversion, a reversal or an ignored event."""


class SharedSource(WebhookSource, Protocol):
    """A platform endpoint shared by several tenants under one platform-wide secret (a Stripe Connect
    platform's, a Shopify app's): the verified event names its tenant by an account (README "Tenants")."""

    lookup: str  # the kind of account a tenant claims (core/tenant.py: stripe_account, shopify_shop)

    def tenant_key(self, payload: Any, headers: Mapping[str, str]) -> str | None:
        """The account of a verified event, by which its tenant is found; None when it names none."""


@runtime_checkable
class AnswersPings(Protocol):
    """A source whose platform tests a new webhook URL with an unsigned request that must be answered 200."""

    def is_ping(self, raw_body: bytes, headers: Mapping[str, str]) -> bool:
        """True for exactly the platform's test request, which is answered 200 and changes nothing."""


def hmac_sha256(secret: str, message: bytes) -> bytes:
    """HMAC-SHA256 digest of ``message`` keyed with the UTF-8 bytes of ``secret``."""
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest()


def hex_hmac(secret: str, message: bytes) -> str:
    """The lower-case hex HMAC-SHA256 of ``message`` (Stripe, Paddle, Lemon Squeezy)."""
    return hmac_sha256(secret, message).hex()


def base64_hmac(secret: str, message: bytes) -> str:
    """The base64 HMAC-SHA256 of ``message`` (Shopify, WooCommerce)."""
    return base64.b64encode(hmac_sha256(secret, message)).decode("ascii")


def timestamped_signatures(
    header: str | None, name: str, separator: str, timestamp_key: str, signature_key: str, now: float, tolerance: int
) -> tuple[str, list[str]]:
    """The timestamp and the signatures of a ``t=…<sep>v1=…[<sep>v1=…]`` header (Stripe, Paddle), once the
    timestamp is ASCII digits within ``tolerance`` seconds of ``now``, either way. ``name`` is the header's,
    for the messages."""
    if not header:
        raise SignatureError(f"missing {name} header")
    timestamp = ""
    signatures: list[str] = []
    for item in header.split(separator):
        key, _, value = item.strip().partition("=")
        if key == timestamp_key:
            timestamp = value
        elif key == signature_key:
            signatures.append(value)
    if not timestamp.isascii() or not timestamp.isdigit() or not signatures:
        raise SignatureError(f"{name} header has no timestamp or no {signature_key} signature")
    if len(timestamp) > MAX_TIMESTAMP_DIGITS:  # int() takes 4300 digits; a float subtraction overflows long before
        raise SignatureError(f"{name} timestamp is outside the tolerance window")
    if abs(now - int(timestamp)) > tolerance:
        raise SignatureError(f"{name} timestamp is outside the tolerance window")
    return timestamp, signatures


def matches_hex(secrets: Sequence[str], message: bytes, signatures: Sequence[str]) -> bool:
    """True when any signature is the hex HMAC of ``message`` under any secret; every pair is compared in
    constant time, so the answer's timing says nothing about how close a forgery came."""
    candidates = [signature.strip().lower().encode("ascii", "replace") for signature in signatures]
    found = False
    for secret in secrets:
        expected = hex_hmac(secret, message).encode("ascii")
        for candidate in candidates:
            found |= hmac.compare_digest(expected, candidate)
    return found


def matches_base64(secrets: Sequence[str], message: bytes, signature: str) -> bool:
    """True when ``signature`` is the base64 HMAC of ``message`` under any secret, compared in constant time."""
    candidate = signature.strip().encode("ascii", "replace")
    found = False
    for secret in secrets:
        found |= hmac.compare_digest(base64_hmac(secret, message).encode("ascii"), candidate)
    return found


def require_base64_hmac(
    headers: Mapping[str, str], header_name: str, secrets: Sequence[str], body: bytes, aliases: Sequence[str] = ()
) -> None:
    """SignatureError unless header ``header_name`` (or the first of ``aliases`` present; names as the platform
    spells them, looked up in lower case) is the base64 HMAC of ``body`` under a secret (Shopify, WooCommerce)."""
    signature = _header(headers, header_name, aliases)
    if not matches_base64(secrets, body, signature):
        raise SignatureMismatch(f"{header_name} does not match the configured secret")


def require_hex_hmac(headers: Mapping[str, str], header_name: str, secrets: Sequence[str], body: bytes) -> None:
    """SignatureError unless header ``header_name`` is the hex HMAC of ``body`` under a secret (Lemon Squeezy)."""
    if not matches_hex(secrets, body, [_header(headers, header_name)]):
        raise SignatureMismatch(f"{header_name} does not match the configured secret")


def _header(headers: Mapping[str, str], header_name: str, aliases: Sequence[str] = ()) -> str:
    """The first non-empty value among the header and its aliases, or SignatureError naming the header."""
    for name in (header_name, *aliases):
        value = headers.get(name.lower())
        if value:
            return value
    raise SignatureError(f"missing {header_name} header")


def matches_token(secrets: Sequence[str], tokens: Sequence[str]) -> bool:
    """True when any token equals any secret; every pair is compared in constant time."""
    found = False
    for secret in secrets:
        expected = secret.encode("utf-8")
        for token in tokens:
            found |= hmac.compare_digest(expected, token.encode("utf-8", "replace"))
    return found


def currency_code(value: Any, where: str) -> str:
    """An upper-case ISO 4217 code from ``value``, or MalformedEvent naming the field."""
    if not isinstance(value, str) or len(value) != 3 or not value.isalpha() or not value.isascii():
        raise MalformedEvent(f"{where} must be a three-letter currency code")
    return value.upper()


def major_amount(amount: Any, currency: Any, where: str) -> Money:
    """A non-negative amount in major units, sent as a decimal string ("19.99") or an integer."""
    if isinstance(amount, int) and not isinstance(amount, bool):
        amount = str(amount)
    value: Decimal | None = None
    if isinstance(amount, str):
        try:
            value = Decimal(amount.strip())
        except InvalidOperation:
            value = None
    if value is None or not value.is_finite() or value < 0:
        raise MalformedEvent(f"{where} must be a non-negative decimal amount")
    return Money(value, currency_code(currency, f"the currency of {where}"))


def minor_amount(
    amount: Any, currency: Any, where: str, table: Mapping[str, int] = ISO_EXPONENTS, integer_only: bool = False
) -> Money:
    """A non-negative amount in minor units, sent as an integer (Lemon Squeezy, Stripe: ``integer_only``) or a
    digit string (Paddle), in a currency whose exponent ``table`` gives."""
    if not integer_only and isinstance(amount, str) and amount.isascii() and amount.isdigit():
        amount = int(amount)
    if not isinstance(amount, int) or isinstance(amount, bool) or amount < 0:
        raise MalformedEvent(f"{where} must be a non-negative integer amount in minor units")
    return from_minor_units(amount, currency_code(currency, f"the currency of {where}"), table)


def dig(data: Any, *path: str) -> Any:
    """``data[path[0]][path[1]]…`` or None where any step is missing or not an object."""
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def named_value(items: Any, name: str, name_field: str = "name", value_field: str = "value") -> Any:
    """The value of the first ``{name_field: name, value_field: …}`` in a list such as Shopify's
    note_attributes or WooCommerce's meta_data; None when absent or not such a list."""
    if not isinstance(items, list):
        return None
    for item in items:
        if isinstance(item, dict) and item.get(name_field) == name:
            return item.get(value_field)
    return None


def url_parameter(url: Any, name: str) -> str | None:
    """The first value of query parameter ``name`` in an absolute or relative URL, or None."""
    if not isinstance(url, str) or "?" not in url:
        return None
    try:
        query = urlsplit(url.strip()).query
    except ValueError:  # e.g. an invalid IPv6 host: a landing URL is the visitor's, not ours to trust
        return None
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key == name:
            return value
    return None
