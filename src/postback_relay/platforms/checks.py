"""Authentication as declared, composable checks: a platform that signs nothing (CCBill, Segpay, Epoch) names
the checks that stand in for a signature, and the relay runs them in order.

- ``UrlToken``: the secret token in the URL the merchant pastes into the biller (the `token` query parameter, as
  on `GET /postback`), compared in constant time with every configured value (a list while one is rolled);
- ``FieldDigest``: a digest the platform computes over some fields with a salt (CCBill's
  `dynamicPricingValidationDigest`), checked only when the salt is configured and the field is sent;
- the source-IP allowlist (`<PLATFORM>_ALLOWED_IPS`) is a setting, checked by the relay before any secret is read
  (relay/admission.py); a platform whose checks cover no content (``signs_content`` False) is served only with it,
  unless the operator turns it off explicitly.

A check raises SignatureError (401, nothing changes) or SignatureMismatch (the configured value may have been
rotated: the relay refetches the secret once)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import quote

from postback_relay.core.conversion import ParseContext, ParsedEvent
from postback_relay.core.inbound import TOKEN_PARAMETER, InboundRequest, query_without
from postback_relay.platforms.base import SignatureError, SignatureMismatch, matches_token


class Check(Protocol):
    """One declared check of a request, with the secret field whose values it needs."""

    @property
    def field(self) -> str:
        """The secret field whose values the check needs."""

    @property
    def required(self) -> bool:
        """False: skipped while the field is not configured (an optional salt)."""

    def verify(self, request: InboundRequest, values: Sequence[str], context: ParseContext) -> None:
        """Raise SignatureError unless the request passes with one of ``values`` (``context``: the settings a
        check may need, such as Verotel's shop id)."""


@dataclass(frozen=True)
class UrlToken:
    """The secret token the merchant put in the notification URL, as the `token` query parameter."""

    field: str
    required: bool = True

    def verify(self, request: InboundRequest, values: Sequence[str], context: ParseContext) -> None:
        """Some `token` parameter of the query must equal a configured token (constant time)."""
        tokens = [value for name, value in request.query_pairs if name == TOKEN_PARAMETER and value]
        if not tokens:
            raise SignatureError("missing token (the token query parameter of the URL pasted into the platform)")
        if not matches_token(values, tokens):
            raise SignatureMismatch("the token does not match the configured token")


@dataclass(frozen=True)
class FieldDigest:
    """A digest over some fields keyed with a salt: ``expected(request, salt)`` is the digest the platform sends
    in ``digest_field`` (None when this request carries no digest to check)."""

    field: str
    digest_field: str
    expected: Callable[[InboundRequest, str], tuple[str, str] | None]  # (sent, expected) or None
    required: bool = False

    def verify(self, request: InboundRequest, values: Sequence[str], context: ParseContext) -> None:
        """When the request carries the digest, it must be the one some configured salt gives."""
        found = False
        checked = False
        for salt in values:
            pair = self.expected(request, salt)
            if pair is None:
                return
            checked = True
            sent, expected = pair
            found |= hmac.compare_digest(sent.strip().lower().encode("ascii", "replace"), expected.encode("ascii"))
        if checked and not found:
            raise SignatureMismatch(f"{self.digest_field} does not match the configured salt")


def md5_hex(text: str) -> str:
    """The lower-case hex MD5 of ``text`` (CCBill's digest: an identifier check, not a signature)."""
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


class RequestSource(Protocol):
    """A platform read from the whole request (query, form or JSON body, source address) and authenticated
    by declared checks rather than one body signature: the billers. Its ``secret_field`` is the first
    check's, the one whose absence means the platform is not set up."""

    name: str
    secret_field: str
    demo_secret: str
    signature_carries_secret: bool  # the URL token is the secret: a request is signed only when it is sent
    checks: tuple[Check, ...]
    methods: frozenset[str]  # the HTTP methods the platform notifies with
    published_ips: tuple[str, ...]  # the allowlist's default: the platform's published source ranges
    signs_content: bool  # False: no check covers the content, so the allowlist is required (README)
    success_text: str | None  # the body the platform expects on success (text/plain); None: the JSON answer

    def payload(self, request: InboundRequest) -> object:
        """What ``parse`` reads (the merged parameters, or the JSON body); MalformedEvent when it is not the
        platform's shape."""

    def parse(self, payload: object, context: ParseContext) -> ParsedEvent:
        """Map a verified request's payload to a conversion, a reversal or an ignored event."""

    def sign_query(self, raw_query: str, secret: str) -> str:
        """The query string as the platform would send it to a relay holding ``secret``: what the checks accept
        (the token added, or the parameters signed)."""


def with_token(raw_query: str, token: str) -> str:
    """``raw_query`` with its `token` parameter set to ``token`` (any other value removed)."""
    kept = query_without(raw_query, TOKEN_PARAMETER)
    return "&".join(part for part in (f"{TOKEN_PARAMETER}={quote(token, safe='')}", kept) if part)
