"""One module per platform, and the one registry of them. A source says how the platform signs (``sign`` and
``verify``, side by side), which events count, where the click id and amount are, and its secret's field and
demo value; everything after parsing is shared code, and everything else that names a platform (the local
run's secret, the CLI's signers, the tests' canaries) is derived from ``ROUTED``."""

from __future__ import annotations

import time

from postback_relay.platforms.base import SharedSource, WebhookSource
from postback_relay.platforms.ccbill import CCBILL
from postback_relay.platforms.checks import RequestSource
from postback_relay.platforms.epoch import EPOCH
from postback_relay.platforms.lemonsqueezy import LEMONSQUEEZY
from postback_relay.platforms.paddle import PADDLE, PADDLE_SANDBOX
from postback_relay.platforms.segpay import SEGPAY
from postback_relay.platforms.shopify import SHOPIFY, SHOPIFY_APP
from postback_relay.platforms.stripe import STRIPE, STRIPE_CONNECT
from postback_relay.platforms.tracker import TRACKER
from postback_relay.platforms.verotel import VEROTEL
from postback_relay.platforms.woocommerce import WOOCOMMERCE

# POST /webhooks/<name>: the platforms that push signed webhooks.
SOURCES: dict[str, WebhookSource] = {
    source.name: source for source in (STRIPE, SHOPIFY, WOOCOMMERCE, PADDLE, PADDLE_SANDBOX, LEMONSQUEEZY)
}
# GET or POST /webhooks/<name>: the billers, read from the whole request and authenticated by declared checks
# (a URL token, a source-IP allowlist, a parameter signature or digest) instead of one body signature.
BILLERS: dict[str, RequestSource] = {source.name: source for source in (CCBILL, VEROTEL, SEGPAY, EPOCH)}
# GET /postback: trackers' and networks' S2S postbacks, read from the query string.
POSTBACK_SOURCE: WebhookSource = TRACKER
# POST /webhooks/<route>: endpoints several tenants share under one platform-wide secret (core/tenant.py).
SHARED: dict[str, SharedSource] = {"_connect/stripe": STRIPE_CONNECT, "_app/shopify": SHOPIFY_APP}
# Every source by the last segment of its route (what the template's outputs and the operator CLI name).
ROUTED: dict[str, WebhookSource | RequestSource] = {**SOURCES, **BILLERS, "postback": POSTBACK_SOURCE}


def route_name(path: str) -> str:
    """The ``ROUTED`` name a route's path or URL ends in: ``/webhooks/stripe`` is ``stripe``, ``…/postback``
    is ``postback`` (whether anything is routed there is the caller's question)."""
    return path.rstrip("/").rsplit("/", 1)[-1]


def sign(route: str, body: bytes, secret: str, timestamp: int | None = None) -> dict[str, str]:
    """The signature headers the source routed at ``route`` sends with ``body``, timestamped now unless
    ``timestamp`` is given; none for a biller, whose token or signature is in the query (``sign_query``)."""
    source = ROUTED[route]
    if route in BILLERS:
        return {}
    return source.sign(body, secret, int(time.time()) if timestamp is None else timestamp)  # type: ignore[union-attr]


def sign_query(route: str, raw_query: str, secret: str) -> str:
    """The query string the source routed at ``route`` sends: a biller's token added or its parameters signed;
    as it is for every other source."""
    biller = BILLERS.get(route)
    return biller.sign_query(raw_query, secret) if biller is not None else raw_query


__all__ = [
    "BILLERS",
    "POSTBACK_SOURCE",
    "ROUTED",
    "RequestSource",
    "SHARED",
    "SOURCES",
    "SharedSource",
    "WebhookSource",
    "route_name",
    "sign",
    "sign_query",
]
