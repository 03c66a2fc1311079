"""One module per platform. A source says only how the platform signs, which events count and where the
click id and amount are; everything after parsing is shared code."""

from __future__ import annotations

from postback_relay.platforms.base import WebhookSource
from postback_relay.platforms.lemonsqueezy import LEMONSQUEEZY
from postback_relay.platforms.paddle import PADDLE, PADDLE_SANDBOX
from postback_relay.platforms.shopify import SHOPIFY
from postback_relay.platforms.stripe import STRIPE
from postback_relay.platforms.tracker import TRACKER
from postback_relay.platforms.woocommerce import WOOCOMMERCE

# POST /webhooks/<name>: the platforms that push signed webhooks.
SOURCES: dict[str, WebhookSource] = {
    source.name: source for source in (STRIPE, SHOPIFY, WOOCOMMERCE, PADDLE, PADDLE_SANDBOX, LEMONSQUEEZY)
}
# GET /postback: trackers' and networks' S2S postbacks, read from the query string.
POSTBACK_SOURCE: WebhookSource = TRACKER
# Every source by the last segment of its route (what the template's outputs and the operator CLI name).
ROUTED: dict[str, WebhookSource] = {**SOURCES, "postback": POSTBACK_SOURCE}

__all__ = ["POSTBACK_SOURCE", "ROUTED", "SOURCES", "WebhookSource"]
