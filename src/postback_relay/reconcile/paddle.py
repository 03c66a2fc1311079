"""Paddle Billing's event stream, listed for reconciliation: `GET /events` gives the events a notification
destination would have been sent, each the notification's envelope without its `notification_id` (`event_id`,
`event_type`, `occurred_at`, `data`), so platforms/paddle.py parses both alike and the identity stays the
transaction (`paddle#txn_…`). Only the live `paddle` source is listed; `paddle-sandbox` is another account.

What it relies on:
- developer.paddle.com/api-reference/events/list-events: "events that have occurred in the last 90 days … Events
  older than 90 days aren't retained"; `after` ("Return entities after the specified Paddle ID … Used in the
  meta.pagination.next URL"), `order_by` (`id[ASC]` or `id[DESC]`, id only), `per_page` ("Default: 50; Maximum:
  200"). The response's `meta.pagination` (`per_page`, `next`, `has_more`, `estimated_total`) as in
  PaddleHQ/paddle-python-sdk tests/Functional/Resources/Events/_fixtures/response/list_default.json, whose
  `next` carries `after=evt_…`.
- developer.paddle.com/changelog/2025/filter-events-by-type: `event_type`, a comma-separated list; and
  changelog/2026/event-notification-log-filtering: `from` and `to`, RFC 3339 (shared/reference/
  reconcile-and-tenants.md A.4). [UNCONFIRMED] whether `from`/`to` bound `occurred_at` and include their ends:
  the window is applied again to each event's `occurred_at` here, so either way nothing outside it is listed.
- paddle-python-sdk Client.py: `Authorization: Bearer <key>` and `Paddle-Version: 1`.
- developer.paddle.com/api-reference/about/permissions: `{entity}.read` permissions, a missing one answered
  403 `forbidden`; errors/shared/invalid_token: a wrong or revoked key is 403 `invalid_token` (both become
  CredentialsRefused). [UNCONFIRMED] the permission that lists events is `event.read`, and whether Paddle also
  asks `transaction.read` and `adjustment.read` for the entities the events carry (the README says to add them
  only when the listing is refused `forbidden`).
- api-reference/about/rate-limiting: 240 requests a minute per IP, 429 with Retry-After (ApiClient waits).

Why newest first (`order_by=id[DESC]`): a refund or chargeback adjustment happens after the transaction it
reverses, so listed newest first it is met before its purchase, even pages before it, and Relay.recover records
the purchase reversed instead of sending it. Oldest first would send a purchase from page 1 whose refund waits on
page 3. Paddle's ids are ULID-like (`evt_01h…`), ordered by creation [UNCONFIRMED: Paddle documents only
"ordering by id"]; within a page the reversals come first regardless."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from postback_relay.core.reconcile import Page, Window
from postback_relay.reconcile.api import ApiClient, ApiError

NAME = "paddle"
KEY_FIELD = "paddle_api_key"  # the key's name in the relay's secret: event.read (README, Reconciliation)
DEFAULT_API_BASE = "https://api.paddle.com"
API_VERSION = "1"
EVENT_TYPES = ("transaction.completed", "adjustment.created", "adjustment.updated")  # what the parser acts on
REVERSAL_TYPES = frozenset({"adjustment.created", "adjustment.updated"})
PAGE_SIZE = 200  # Paddle's maximum
RETENTION_SECONDS = 90 * 86_400  # how long Paddle keeps events


class PaddleEvents:
    """The window's transaction.completed and adjustment events, newest first, page by page."""

    source = NAME

    def __init__(self, api: ApiClient, now: float) -> None:
        self._api = api
        self._now = now

    @staticmethod
    def headers(key: str) -> dict[str, str]:
        """The authorization Paddle's API takes, and the API version whose shapes platforms/paddle.py reads."""
        return {"Authorization": f"Bearer {key}", "Paddle-Version": API_VERSION}

    def notes(self, window: Window) -> list[str]:
        """What the window asks that the event stream cannot give."""
        if window.since < self._now - RETENTION_SECONDS:
            return ["Paddle keeps events for 90 days: the part of the window before that was not listed"]
        return []

    def probe(self) -> None:
        """One event, the cheapest read the key's event permission allows."""
        self._api.get_json("/events", [("per_page", "1")])

    def pages(self, window: Window, cursor: str | None = None) -> Iterator[Page]:
        """The window's pages, newest first (the module says why), each page's reversals first, then its
        purchases oldest first; ``cursor`` (a page's ``next_cursor``, Paddle's `after`) resumes after the event it
        names. The listing ends at the last page, or at the first page that reaches back before the window.
        ApiError when a page cannot be read or is not a list of events."""
        since = max(window.since, self._now - RETENTION_SECONDS)
        params = [
            ("event_type", ",".join(EVENT_TYPES)),
            ("from", _rfc3339(since)),
            ("to", _rfc3339(window.until)),
            ("order_by", "id[DESC]"),
            ("per_page", str(PAGE_SIZE)),
        ]
        after = cursor
        while True:
            page = self._api.get_json("/events", params + ([("after", after)] if after else []))
            data = page.get("data") if isinstance(page, dict) else None
            if not isinstance(data, list) or not all(isinstance(e, dict) and "event_id" in e for e in data):
                raise ApiError("Paddle's events page is not a list of events")
            meta = page.get("meta")
            pagination = meta.get("pagination") if isinstance(meta, dict) else None
            pagination = pagination if isinstance(pagination, dict) else {}
            times = [_occurred(event) for event in data]
            reached_before = any(moment is not None and moment < since for moment in times)
            more = bool(pagination.get("has_more")) and bool(data) and not reached_before
            after = _after(pagination, data) if more else None
            listed = [
                event
                for event, moment in zip(data, times, strict=True)
                if moment is None or since <= moment <= window.until
            ]
            yield Page(sorted(listed, key=_reversals_then_oldest), after)
            if after is None:
                return


def _rfc3339(epoch: float) -> str:
    """Epoch seconds as Paddle writes times (paddle-python-sdk Entities/DateTime.py): UTC, microseconds, Z."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _occurred(event: dict[str, Any]) -> float | None:
    """An event's `occurred_at` in epoch seconds; None when it has none that reads (the event is kept: the
    window's `from`/`to` already chose it, and the parser does not need the time)."""
    value = event.get("occurred_at")
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _after(pagination: dict[str, Any], data: list[dict[str, Any]]) -> str:
    """The cursor of the next page: the `after` of Paddle's own `next` URL, else the page's last event id."""
    next_url = pagination.get("next")
    if isinstance(next_url, str):
        [value, *_] = parse_qs(urlsplit(next_url).query).get("after", [""])
        if value:
            return value
    return str(data[-1]["event_id"])


def _reversals_then_oldest(event: dict[str, Any]) -> tuple[bool, float, str]:
    return event.get("event_type") not in REVERSAL_TYPES, _occurred(event) or 0.0, str(event["event_id"])
