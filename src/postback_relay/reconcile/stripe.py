"""Stripe, listed for reconciliation: the Events API for the last 30 days, and before that the objects themselves
(refunded Charges, Checkout Sessions, Invoices, PaymentIntents), each wrapped as the event its webhook would have
been, so platforms/stripe.py parses all of them alike and a purchase keeps the identity its webhook gives it.

What it relies on (shared/reference/reconcile-and-tenants.md A.1, from stripe-python 16.1.0's list params and
docs.stripe.com/api): `GET /v1/events` with `types[]` (up to 20), `created[gte]`, `created[lte]`; the object lists
`GET /v1/charges`, `GET /v1/checkout/sessions` (`status`), `GET /v1/invoices` (`status`) and
`GET /v1/payment_intents` with `created[gte]`, `created[lte]`; every list with `limit` (at most 100) and
`starting_after` (the last id of the page), newest first, `has_more`. Events are kept for 30 days
(docs.stripe.com/webhooks/process-undelivered-events). Authorization: a restricted key (`rk_…`) with Read on
Events, Charges, Checkout Sessions, Invoices and PaymentIntents; as a Bearer header.

Why objects are read at a pinned version: an event is rendered at the API version of its creation whatever the
request says, an object at the request's `Stripe-Version`. From 2025-03-31 ("basil") a Charge and a PaymentIntent
no longer name their invoice (stripe-node v18.0.0's notes: "Remove support for invoice on Charge and
PaymentIntent"); the link moved to InvoicePayments, whose events reconciliation does not apply. Read at
2025-02-24.acacia, the last version before it, a refunded charge names the subscription invoice it paid (so the
refund reaches the invoice's conversion) and an invoice's PaymentIntent names the invoice (so it is a link, not a
second purchase), the shapes the parser reads for events of that version.

Not seen before the 30 days (the run's notes say the first): a dispute (a charge says only `disputed`, not
whether it was won; the disputes' own list would need one more permission); an invoice created more than a day
before the window and paid in it (the lists filter on `created`, Stripe has no filter on `paid_at`); a partial
refund, which is met before its purchase and, as its webhook would be then, not kept (the sale stands)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import Any, NamedTuple

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
OBJECTS_API_VERSION = "2025-02-24.acacia"  # the objects' shape: the last version whose charges name their invoice
# A Checkout Session expires at most 24 h after it is created and may be paid until then; its charge and
# PaymentIntent are as old at most: the object lists start this long before the window.
OBJECT_OVERLAP_SECONDS = 86_400
# The hour after the events' 30-day edge is also read from the objects: Stripe may drop an event there while the
# run reads (its clock and ours differ), and a purchase read both ways is only recorded once.
EDGE_SECONDS = 3_600
EVENTS = "events"
# Reads one page of a list after an id (None: its first): its events, and its last id when there is more.
Reader = Callable[[str | None], tuple[list[Any], str | None]]


class ObjectList(NamedTuple):
    """One object list read for the part of a window before the events: its name in a cursor, its path and
    filters, the event type its objects are wrapped as, and which of them that event would have been sent for."""

    name: str
    path: str
    filters: tuple[tuple[str, str], ...]
    event_type: str
    keep: Callable[[dict[str, Any]], bool]


# In the order read. Refunds first: a refunded charge is kept as a reversal under the PaymentIntent and invoice
# it names before their purchase is listed, so the purchase is recorded reversed and never sent (whenever the
# refund was made: the charge carries its refund state, where its charge.refunded event may be gone). Sessions
# before invoices and PaymentIntents: a session is what carries a Payment Link's click id (client_reference_id).
OBJECT_LISTS = (
    ObjectList(
        "charges", "/v1/charges", (), "charge.refunded", lambda charge: _positive(charge.get("amount_refunded"))
    ),
    ObjectList(
        "sessions",
        "/v1/checkout/sessions",
        (("status", "complete"),),
        "checkout.session.completed",
        # no payment_status filter exists: an unpaid session (an async payment still pending, or failed) had no
        # checkout.session.completed the parser acts on; a trial's (no_payment_required) starts the subscription
        lambda session: session.get("payment_status") in ("paid", "no_payment_required"),
    ),
    ObjectList(
        "invoices", "/v1/invoices", (("status", "paid"),), "invoice.paid", lambda inv: inv.get("status") == "paid"
    ),
    # no status filter exists; a PaymentIntent of a session shares the session's identity, one of an invoice names
    # it (at the pinned version) and is only a link: neither is a second purchase
    ObjectList(
        "payment_intents",
        "/v1/payment_intents",
        (),
        "payment_intent.succeeded",
        lambda intent: intent.get("status") == "succeeded",
    ),
)


class StripeEvents:
    """The window's events of the types the relay acts on, and before the events' 30 days its objects."""

    source = NAME

    def __init__(self, api: ApiClient, now: float) -> None:
        self._api = api
        self._now = now

    @staticmethod
    def headers(key: str) -> dict[str, str]:
        """The authorization Stripe's API takes, and the version objects are read at (events keep their own)."""
        return {"Authorization": f"Bearer {key}", "Stripe-Version": OBJECTS_API_VERSION}

    def notes(self, window: Window) -> list[str]:
        """What the window asks that the Events API cannot give, and where it was read instead."""
        if window.since < self._edge:
            return [
                "Stripe keeps events for 30 days: the events before that were not available",
                "the part of the window before that was read from its Charges (refunds), Checkout Sessions, "
                "Invoices and PaymentIntents; a dispute opened there is not seen",
            ]
        return []

    def probe(self) -> None:
        """One item of each list a run may read (events, then each object list), the cheapest reads that prove
        every permission the README asks for: a key lacking one is refused here, not in the first run that
        reaches past the 30 days."""
        self._api.get_json("/v1/events", [("limit", "1")])
        for listed in OBJECT_LISTS:
            self._api.get_json(listed.path, [("limit", "1")])

    def pages(self, window: Window, cursor: str | None = None) -> Iterator[Page]:
        """The window's pages: its last 30 days from the events, newest first as Stripe lists them (a refund or
        dispute is newer than the purchase it reverses, so it is met first and the purchase is recorded
        reversed, never sent), each page's reversals first, then its purchases oldest first; then the part
        before from the object lists, in OBJECT_LISTS' order. ``cursor`` (a page's ``next_cursor``,
        "<list>:<last id>", or a bare event id as earlier runs saved it) resumes after the item it names. ApiError
        when a page cannot be read or is not a list."""
        parts = self._parts(window)
        part, starting_after = _parse_cursor(cursor)
        names = [name for name, _ in parts]
        start = names.index(part) if part in names else 0
        for index in range(start, len(parts)):
            name, read = parts[index]
            following = f"{names[index + 1]}:" if index + 1 < len(parts) else None
            after = starting_after if index == start and name == part else None
            while True:
                events, last = read(after)
                after = last
                yield Page(events, f"{name}:{last}" if last is not None else following)
                if last is None:
                    break

    @property
    def _edge(self) -> float:
        """The oldest creation time the Events API still lists."""
        return self._now - RETENTION_SECONDS

    def _parts(self, window: Window) -> list[tuple[str, Reader]]:
        """The lists that cover ``window``, in the order read: the events within 30 days, then (when the window
        reaches before) each object list; each reads one page after an id into (events, its last id when
        there is more)."""
        parts: list[tuple[str, Reader]] = []
        if window.until >= self._edge:
            parts.append((EVENTS, partial(self._events_page, max(window.since, self._edge), window.until)))
        if window.since < self._edge:
            since, until = window.since - OBJECT_OVERLAP_SECONDS, min(window.until, self._edge + EDGE_SECONDS)
            parts += [(listed.name, partial(self._objects_page, listed, since, until)) for listed in OBJECT_LISTS]
        return parts

    def _events_page(self, since: float, until: float, after: str | None) -> tuple[list[Any], str | None]:
        params = [("types[]", kind) for kind in EVENT_TYPES]
        data, last = self._page("/v1/events", params, since, until, after, "events")
        return sorted(data, key=_reversals_then_oldest), last

    def _objects_page(
        self, listed: ObjectList, since: float, until: float, after: str | None
    ) -> tuple[list[Any], str | None]:
        data, last = self._page(listed.path, list(listed.filters), since, until, after, listed.name)
        kept = sorted((obj for obj in data if listed.keep(obj)), key=_oldest)
        return [_as_event(listed.event_type, obj) for obj in kept], last

    def _page(
        self, path: str, params: list[tuple[str, str]], since: float, until: float, after: str | None, what: str
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of a Stripe list created in [since, until], after the id ``after``: its items, and the
        last one's id when there is more."""
        params = [
            *params,
            ("created[gte]", str(int(since))),
            ("created[lte]", str(int(until))),
            ("limit", str(PAGE_SIZE)),
            *([("starting_after", after)] if after else []),
        ]
        page = self._api.get_json(path, params)
        data = page.get("data") if isinstance(page, dict) else None
        if not isinstance(data, list) or not all(isinstance(item, dict) and "id" in item for item in data):
            raise ApiError(f"Stripe's {what} page is not a list of {what}")
        more = bool(page.get("has_more")) and bool(data)
        return data, str(data[-1]["id"]) if more else None


def _parse_cursor(cursor: str | None) -> tuple[str, str | None]:
    """A cursor's list and the id to resume after; a bare id (what runs before the object lists saved) is an
    event's."""
    if cursor is None:
        return EVENTS, None
    part, colon, after = cursor.partition(":")
    if not colon:
        return EVENTS, cursor
    return part, after or None


def _as_event(event_type: str, obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` as the event its webhook would have carried: the parser reads the type, the object, `livemode`
    and (for the shape) `api_version`; the id says it was listed, never delivered."""
    return {
        "id": f"reconcile:{obj['id']}",
        "object": "event",
        "type": event_type,
        "api_version": OBJECTS_API_VERSION,
        "created": obj.get("created"),
        "livemode": obj.get("livemode"),
        "data": {"object": obj},
    }


def _positive(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _oldest(obj: dict[str, Any]) -> tuple[int, str]:
    return int(obj.get("created") or 0), str(obj["id"])


def _reversals_then_oldest(event: dict[str, Any]) -> tuple[bool, int, str]:
    return event.get("type") not in REVERSAL_TYPES, int(event.get("created") or 0), str(event["id"])
