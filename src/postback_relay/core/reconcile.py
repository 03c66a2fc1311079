"""Reconciliation, the pure part: the window a run covers and the tally it ends with (README "Reconciliation").

Why reconcile: a webhook the platform gave up on (Stripe after 3 days, Shopify after 8 tries, WooCommerce after
one) is a conversion the advertiser paid for and never reported. A run lists the window's purchases from the
platform's API, in the shape its webhook has, and hands each to the same parse → record → send path under the
same identity: a purchase already recorded is left alone (counted), a missing one is recorded with
`origin: reconcile` and sent once with the lead code its webhook would have had, so a late webhook or a second
run is a duplicate."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from postback_relay.core.outcome import Outcome


class Window(NamedTuple):
    """The creation times a run covers, in epoch seconds, both ends included."""

    since: float
    until: float


def settled_window(since: float, until: float | None, now: float, settle_seconds: float) -> Window:
    """``[since, until]``, ending no later than ``now − settle_seconds``: a purchase younger than that may still
    have its webhook on the way, and reconciling it first would only race it (harmlessly, but noisily)."""
    end = now - settle_seconds if until is None else min(until, now - settle_seconds)
    if end < since:
        raise ValueError("the window ends before it starts (or within the settle time of now)")
    return Window(since, end)


def scheduled_window(
    watermark: float | None, now: float, settle_seconds: float, overlap_seconds: float
) -> Window | None:
    """The window a scheduled run covers: ``[watermark − overlap, now − settle]``; None when it is empty (the
    schedule fired again within the settle time). Before the first run there is no watermark and the window is
    the overlap before ``now − settle``: a first deploy must never report purchases from before the relay was
    there (another system may have reported them); an operator backfills older ones on purpose, with
    `postback-relay reconcile --source stripe --since 7d`."""
    end = now - settle_seconds
    start = (end if watermark is None else watermark) - overlap_seconds
    return Window(start, end) if end > start else None


class Page(NamedTuple):
    """One page of a platform's listing: its events in the shape of the platform's webhooks, and the cursor
    that resumes the listing after it (None: the window's last page). A cursor is the platform's own (an event
    id, a page number, a GraphQL end cursor): saved after each page, it lets a run that ran out of time resume
    where it stopped, with no event skipped and none listed twice."""

    events: list[Any]
    next_cursor: str | None


class Recovered(NamedTuple):
    """What became of one listed event: a purchase's outcome, a reversal's, or why it was ignored."""

    kind: Literal["purchase", "reversal", "ignored"]
    outcome: Outcome


@dataclass
class Tally:
    """What one run found: how many the platform listed, how many the relay had, what it recovered (by the
    outcome of each: sent, retry_pending, no_click_id, …), reversals applied, the ignored by reason, the errors,
    and in a dry run what would be recorded (with its postback URL, key redacted). A ``report_only`` run (a
    platform whose API cannot give what a record needs) records nothing: the purchases the relay never saw are
    ``unseen``, each by its identity and what the listing says of it (its number, date), never a secret."""

    listed: int = 0
    already_recorded: int = 0
    recovered: Counter[str] = field(default_factory=Counter)
    reversals: Counter[str] = field(default_factory=Counter)
    ignored: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)  # "<code>: <what was said>", as the summary prints them
    error_codes: list[str] = field(default_factory=list)  # the code of each, for the metrics and the state item
    would_record: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the window could not cover, and why
    pages: int = 0
    cursor: str | None = None  # where the listing stopped before the window's end (None: it reached it)
    report_only: bool = False
    unseen: list[dict[str, Any]] = field(default_factory=list)  # a report-only run's purchases never seen

    def add(self, recovered: Recovered, shown: dict[str, Any] | None = None) -> None:
        """Count one listed event by what became of it; ``shown`` is what a report-only run says of a purchase
        never seen besides its identity."""
        kind, outcome = recovered
        if kind == "ignored":
            self.ignored[str(outcome.body.get("reason", "ignored"))] += 1
        elif kind == "reversal":
            self.reversals[outcome.status] += 1
        elif outcome.status == "already_recorded":
            self.already_recorded += 1
        elif outcome.status == "would_record" and self.report_only:
            self.unseen.append({"conversion_id": outcome.body.get("conversion_id"), **(shown or {})})
        elif outcome.status == "would_record":
            self.would_record.append(dict(outcome.body))
        else:
            self.recovered[outcome.status] += 1

    def fail(self, code: str, message: str) -> None:
        """Count an error that ended the run: ``code`` is low-cardinality (credentials_refused, budget_spent,
        store_unavailable, …), ``message`` what was said (never a key: the API client scrubs it)."""
        self.errors.append(f"{code}: {message}")
        self.error_codes.append(code)

    @property
    def credentials_refused(self) -> bool:
        """Whether the platform refused the read-only key (wrong, expired, or lacking a permission)."""
        return "credentials_refused" in self.error_codes

    @property
    def sent(self) -> int:
        """Recovered conversions whose postback TrafficStars accepted in this run."""
        return self.recovered["sent"]

    def as_dict(self) -> dict[str, Any]:
        """The summary, as `postback-relay reconcile --source stripe --since 7d --json` prints it."""
        return {
            "listed": self.listed,
            "already_recorded": self.already_recorded,
            "recovered": sum(self.recovered.values()),
            "recovered_by_outcome": dict(sorted(self.recovered.items())),
            "sent": self.sent,
            "reversals": dict(sorted(self.reversals.items())),
            "ignored": dict(sorted(self.ignored.items())),
            "errors": list(self.errors),
            "would_record": list(self.would_record),
            "notes": list(self.notes),
            "pages": self.pages,
            "report_only": self.report_only,
            "unseen": list(self.unseen),
            "complete": self.cursor is None and not self.errors,
        }
