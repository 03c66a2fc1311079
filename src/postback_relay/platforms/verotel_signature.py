"""Verotel FlexPay postback signatures: the canonical string, signing, and constant-time validation.

Source of the algorithm: Verotel's official PHP client, https://github.com/verotel/flexpay-php-client,
``src/Verotel/FlexPay/Client.php`` (``_signature`` and ``validate_signature``; protocol version 4 signs
SHA-256, the older 3.x client SHA-1), and its test vectors in ``tests/VerotelFlexPayClientTest.php``.

A FlexPay postback is a GET whose query parameters are signed. The signed string is the merchant's secret
followed by every received parameter except ``signature`` as ``key=value``, keys sorted (PHP ``ksort``;
for FlexPay's ASCII keys that is Python's ``sorted``), all joined by ``:``. ``shopID`` is part of the string
even when Verotel does not send it: the client adds the merchant's shop id when it is missing. The
signature is the lower-case hex SHA-256 of that UTF-8 string; the older SHA-1 hex of the same string is
still accepted, as the PHP client accepts it.

Values are the URL-decoded strings (the caller decodes the query string); duplicates are the caller's
concern, as it hands over a mapping. Only ``hashlib`` and ``hmac`` are used, so the module is pure.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence

SIGNATURE = "signature"
SHOP_ID = "shopID"
ALGORITHMS = ("sha256", "sha1")  # sha256 is current; sha1 is the legacy form Verotel still accepts


def canonical(secret: str, params: Mapping[str, str], shop_id: str | None) -> str:
    """The string Verotel signs: ``secret:k1=v1:k2=v2...`` over the sorted parameters.

    ``signature`` is left out because it is the result, not an input. ``shopID`` is added from ``shop_id``
    only when the parameters lack it, as the PHP client does, so a postback that names its shop and one
    that does not sign the same way; with no known shop id nothing is added.
    """
    signed = {key: value for key, value in params.items() if key != SIGNATURE}
    if SHOP_ID not in signed and shop_id is not None:
        signed[SHOP_ID] = shop_id
    return ":".join([secret, *(f"{key}={value}" for key, value in sorted(signed.items()))])


def sign(secret: str, params: Mapping[str, str], shop_id: str | None = None, algorithm: str = "sha256") -> str:
    """The lower-case hex digest of the canonical string, as Verotel would send it.

    ``algorithm`` is ``"sha256"`` (current) or ``"sha1"`` (legacy); anything else is refused, since a
    signature under any other hash is never one Verotel sends.
    """
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unsupported Verotel signature algorithm: {algorithm!r}")
    return hashlib.new(algorithm, canonical(secret, params, shop_id).encode("utf-8")).hexdigest()


def matches(secrets: Sequence[str], params: Mapping[str, str], signature: str, shop_id: str | None) -> bool:
    """Whether ``signature`` is the SHA-256 or SHA-1 of the canonical string under any of ``secrets``.

    Several secrets allow a rotation (old and new both valid for a while). The received signature is
    lower-cased first, because the PHP client compares it lower-cased. Every candidate is compared with
    ``hmac.compare_digest`` and none is skipped once one matches, so the time taken says nothing about
    which secret or which prefix was right. A ``signature`` key in ``params`` is ignored (``canonical``
    strips it).
    """
    received = signature.lower().encode("ascii", "replace")
    found = False
    for secret in secrets:
        for algorithm in ALGORITHMS:
            expected = sign(secret, params, shop_id, algorithm).encode("ascii")
            found |= hmac.compare_digest(expected, received)
    return found
