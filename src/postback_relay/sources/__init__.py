"""One module per platform. A source says only how the platform signs, which events count and where the
click id and amount are; everything after parsing is shared code."""

from __future__ import annotations

from postback_relay.sources.base import WebhookSource
from postback_relay.sources.stripe import STRIPE

SOURCES: dict[str, WebhookSource] = {source.name: source for source in (STRIPE,)}

__all__ = ["SOURCES", "WebhookSource"]
