"""Forward mode, the pure part: which merchant URL a verified request is passed on to, what of the request goes
with it, which addresses it may reach, and what the merchant's answer means. relay/forwarding.py makes the call.

Why forward at all: Verotel has one postback URL per website (billers.md E.4), and the merchant's own membership
system needs that slot as much as the relay does. With `<PLATFORM>_FORWARD_URL` set, the relay takes the slot,
passes each request it verified on to that URL (the same method, the query without the relay's `token`, the exact
body, the platform's headers), and answers the platform with the merchant's answer, while it records and sends
the conversion itself as it always does. Any routed source may be forwarded, not only the billers.

What is never forwarded: a request the relay refused before it knew the platform sent it (404, 403, 401, 413):
the merchant's endpoint must not become reachable through the relay by anyone. What is never done: following a
redirect (its status is the answer), or reaching a loopback, link-local, private or otherwise non-public address
outside the local run (a misconfigured or re-pointed DNS name must not turn the relay into a way into a private
network); the address is checked after resolution and the connection made to that same address."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from typing import Literal, NamedTuple

from postback_relay.core.inbound import TOKEN_PARAMETER, InboundRequest

ForwardFailure = Literal["pass", "answer"]

# Request headers that describe this hop, not the platform's request: the connection's own, API Gateway's and the
# proxies'. Everything else (the signature headers, the content type, the user agent) goes to the merchant.
HOP_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "connection",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "accept-encoding",  # the relay reads the answer; the platform gets it decoded, not re-encoded
        "forwarded",
        "via",
    }
)
HOP_HEADER_PREFIXES = ("x-amzn-", "x-amz-", "x-forwarded-")
MAX_ANSWER_BYTES = 1_048_576  # a merchant's answer to a biller is a word; more than this is not passed on
FORWARDED_BY = "1.1 postback-relay"

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class ForwardRequest(NamedTuple):
    """What is sent to the merchant: method, the whole URL (query included), headers and the exact body."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes


class MerchantAnswer(NamedTuple):
    """The merchant endpoint's answer, or why there was none. ``reason`` is a metric label: ``answered`` for any
    status below 500 (a 4xx is the merchant's deliberate answer), else http_5xx, timeout, connection_error,
    certificate_error, target_not_public or answer_too_large. ``status`` is what the platform is answered: the
    merchant's own, or 502 (504 for a timeout) when it gave none."""

    status: int
    content_type: str
    body: bytes
    reason: str
    duration_ms: float = 0.0

    @property
    def failed(self) -> bool:
        """The merchant is down (5xx) or could not be reached: FORWARD_ON_FAILURE decides the answer."""
        return self.reason != "answered"


class Forwarded(NamedTuple):
    """What came of forwarding one request: the merchant's answer, and whether the platform is answered with it
    (False only when the merchant failed and FORWARD_ON_FAILURE is `answer`: then the relay's own answer goes)."""

    answer: MerchantAnswer
    replaces: bool


def settle(answer: MerchantAnswer, on_failure: ForwardFailure) -> Forwarded:
    """Which answer the platform gets. Passing the merchant's failure on is the default because it is what the
    platform would have seen without the relay (and it retries, as it would have); `answer` makes the relay's
    own answer stand in for a merchant that is down, for a merchant who prefers its platform never to retry."""
    return Forwarded(answer, not (answer.failed and on_failure == "answer"))


def failure(reason: str, message: str, duration_ms: float = 0.0) -> MerchantAnswer:
    """The answer when the merchant gave none: a JSON error the platform (and its operator) can read."""
    status = 504 if reason == "timeout" else 502
    body = json.dumps({"error": "forward_failed", "reason": reason, "message": message[:300]})
    return MerchantAnswer(status, "application/json", body.encode("utf-8"), reason, duration_ms)


def answered(status: int, content_type: str, body: bytes, duration_ms: float) -> MerchantAnswer:
    """The merchant's answer as received; a 5xx is its own failure, passed on or replaced per FORWARD_ON_FAILURE."""
    reason = "answered" if status < 500 else "http_5xx"
    return MerchantAnswer(status, content_type, body, reason, duration_ms)


def forward_request(target: str, request: InboundRequest) -> ForwardRequest:
    """The request to send to ``target`` (a checked `<PLATFORM>_FORWARD_URL`): the platform's query without the
    relay's token appended to the target's own, the body as received, the platform's headers without this hop's,
    plus X-Forwarded-For (the platform's address: a merchant that checks it still can) and Via."""
    query = request.without_parameter(TOKEN_PARAMETER)
    url = target if not query else f"{target}{'&' if '?' in target else '?'}{query}"
    headers = {
        name: value
        for name, value in request.headers.items()
        if name.lower() not in HOP_HEADERS and not name.lower().startswith(HOP_HEADER_PREFIXES)
    }
    if request.source_ip:
        headers["X-Forwarded-For"] = request.source_ip
    headers["X-Forwarded-Proto"] = "https"
    headers["Via"] = FORWARDED_BY
    return ForwardRequest(request.method, url, headers, request.body)


def is_public(address: Address) -> bool:
    """Whether an address may be forwarded to outside the local run: a global unicast address. Loopback,
    link-local (the instance metadata service), private, shared (CGNAT), reserved, multicast and unspecified
    addresses are not, nor an IPv4-mapped or NAT64-embedded form of one."""
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped or _nat64(address)
        if mapped is not None:
            return is_public(mapped)
    return address.is_global and not address.is_multicast


def _nat64(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address in ipaddress.IPv6Network("64:ff9b::/96"):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None
