"""Stripe's Events API, listed for reconciliation: the events a webhook endpoint would have received, as the very
objects Stripe posts (an event's JSON is the webhook body), so platforms/stripe.py parses both alike.

What it relies on (docs.stripe.com/api/events/list, docs.stripe.com/webhooks/process-undelivered-events, quoted in
shared/reference/reconcile-and-tenants.md A.1): `GET /v1/events` with `types[]` (up to 20), `created[gte]`,
`created[lte]`, `limit` (at most 100) and `starting_after` (the last id of the page), newest first, `has_more`;
events are kept for 30 days, so an older part of a window is said in the run's notes and left to the webhook
history. Authorization: a restricted key (`rk_…`) with read access to Events is enough; as a Bearer header."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from postback_relay.core.reconcile import Page, Window
from postback_relay.reconcile.api import ApiClient, ApiError

NAME = "stripe"
KEY_FIELD = "stripe_api_key"  # the restricted key's name in the relay's secret
DEFAULT_API_BASE = "https://api.stripe.com"
EVENT_TYPES = (
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "invoice.paid",
    "payment_intent.succeeded",
    "charge.refunded",
    "charge.dispute.created",
)
REVERSAL_TYPES = frozenset({"charge.refunded", "charge.dispute.created"})
PAGE_SIZE = 100
RETENTION_SECONDS = 30 * 86_400  # how long Stripe keeps events


class StripeEvents:
    """The window's events of the types the relay acts on, oldest first."""

    source = NAME

    def __init__(self, api: ApiClient, now: float) -> None:
        self._api = api
        self._now = now

    @staticmethod
    def headers(key: str) -> dict[str, str]:
        """The authorization Stripe's API takes."""
        return {"Authorization": f"Bearer {key}"}

    def notes(self, window: Window) -> list[str]:
        """What the window asks that the Events API cannot give."""
        oldest = self._now - RETENTION_SECONDS
        if window.since < oldest:
            return ["Stripe keeps events for 30 days: the part of the window before that was not listed"]
        return []

    def probe(self) -> None:
        """One event, the cheapest read the key's Events permission allows."""
        self._api.get_json("/v1/events", [("limit", "1")])

    def pages(self, window: Window, cursor: str | None = None) -> Iterator[Page]:
        """The window's pages, newest first as Stripe lists them (a refund or dispute is newer than the purchase
        it reverses, so it is met first and the purchase is recorded reversed, never sent), each page's
        reversals first, then its purchases oldest first; ``cursor`` (a page's ``next_cursor``) resumes after
        the event it names. ApiError when a page cannot be read or is not a list of events."""
        since = max(window.since, self._now - RETENTION_SECONDS)
        params = [("types[]", kind) for kind in EVENT_TYPES]
        params += [
            ("created[gte]", str(int(since))),
            ("created[lte]", str(int(window.until))),
            ("limit", str(PAGE_SIZE)),
        ]
        starting_after = cursor
        while True:
            page_params = params + ([("starting_after", starting_after)] if starting_after else [])
            page = self._api.get_json("/v1/events", page_params)
            data = page.get("data") if isinstance(page, dict) else None
            if not isinstance(data, list) or not all(isinstance(event, dict) and "id" in event for event in data):
                raise ApiError("Stripe's events page is not a list of events")
            more = bool(page.get("has_more")) and bool(data)
            starting_after = str(data[-1]["id"]) if more else None
            yield Page(sorted(data, key=_reversals_then_oldest), starting_after)
            if starting_after is None:
                return


def _reversals_then_oldest(event: dict[str, Any]) -> tuple[bool, int, str]:
    return event.get("type") not in REVERSAL_TYPES, int(event.get("created") or 0), str(event["id"])
