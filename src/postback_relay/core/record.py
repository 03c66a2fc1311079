"""A conversion's record: its states, its fields and which states each field exists in, and every transition
between states, declared once, as data.

Why one module: the promise "never lose a conversion, never count one twice, never report a refunded one"
is a property of the whole lifecycle, and it broke when each writer (create, claim, finish, reversal, replay)
built its own update with its own idea of which fields it may touch: a duplicate delivery put a finished
record back in the due index, a refund landing mid-send was overwritten by the send's outcome. Here every
transition names the states it leaves from (with the guard each of them needs), the state it goes to, the
fields it sets and the fields it removes; ``update_for`` turns one into a single conditional DynamoDB
UpdateItem, so the condition that enforces the transition is part of the same write. `store.py` executes
transitions and nothing else writes a record.

    (absent) ──record──► sending ──sent──► sent                               (final)
             │              │──rejected──► rejected                         (final)
             │              │──retry──► retry_pending ──claim (due)──► sending …
             │              │               └──fail (window spent)──► failed (final, DLQ)
             │              └──claim (lease expired: the sender died)──► sending
             ├──hold──► no_click_id · invalid_click_id · test_mode · not_counted
             │            └──upgrade (no_click_id, invalid_click_id: a later event has the click id)──► sending
             └──tombstone (a reversal of a purchase not recorded yet)──► refunded · charged_back · cancelled
    any record ──reverse──► refunded · charged_back · cancelled   (final for sending; leaves the due index)
    failed · rejected · retry_pending ──reopen (replay)──► retry_pending
    any record ──note (a duplicate delivery, a partial refund, a dispute won)──► unchanged: ids, types, counts,
                 amounts, the dispute's status only
    a final record still in the due index (written before this module) ──leave_due_index──► unchanged

Only ``sending`` holds a lease; only ``sending`` and ``retry_pending`` are in the sparse ``due`` index, so a
final record is never swept and the index is as small as the backlog. Pure: no boto3, no I/O."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum, StrEnum
from typing import Any, NamedTuple

from postback_relay.core.expression import Update
from postback_relay.core.tenant import DEFAULT_TENANT


class Status(StrEnum):
    """Every status a record can have (the ``status`` attribute)."""

    SENDING = "sending"  # claimed: one sender holds the lease and may GET TrafficStars
    SENT = "sent"  # TrafficStars answered ok
    REJECTED = "rejected"  # TrafficStars refused it for good (invalid code, price, key)
    RETRY_PENDING = "retry_pending"  # no answer yet; due again at due_at
    FAILED = "failed"  # the retry window is spent; parked in the dead-letter queue
    NO_CLICK_ID = "no_click_id"  # recorded, nothing to send it with
    INVALID_CLICK_ID = "invalid_click_id"  # recorded, the click id is not TrafficStars'
    TEST_MODE = "test_mode"  # a platform's test event: recorded, not forwarded
    NOT_COUNTED = "not_counted"  # recorded: a moment no configured goal counts (a trial start without a lead goal)
    REFUNDED = "refunded"
    CHARGED_BACK = "charged_back"
    CANCELLED = "cancelled"


IN_FLIGHT = frozenset({Status.SENDING, Status.RETRY_PENDING})  # in the due index
LEASED = frozenset({Status.SENDING})
HELD = frozenset(
    {Status.NO_CLICK_ID, Status.INVALID_CLICK_ID, Status.TEST_MODE, Status.NOT_COUNTED}
)  # recorded, not forwarded
UPGRADABLE = frozenset({Status.NO_CLICK_ID, Status.INVALID_CLICK_ID})
REVERSED = frozenset({Status.REFUNDED, Status.CHARGED_BACK, Status.CANCELLED})
DONE_SENDING = frozenset({Status.SENT, Status.REJECTED, Status.FAILED})
FINAL = DONE_SENDING | REVERSED  # nothing will be sent for these, ever (except an operator's reopen)
REPLAYABLE = frozenset({Status.FAILED, Status.REJECTED, Status.RETRY_PENDING})
EVERY_STATUS = frozenset(Status)
OUTCOME_STATUS = {"ok": Status.SENT, "rejected": Status.REJECTED, "invalid_key": Status.REJECTED}

DUE_SHARD = "due"  # the due index's partition key value: one partition, ordered by due_at

# The attributes each transition may be given values for (beyond what it sets itself).
CONVERSION_FIELDS = frozenset(
    {
        "source",
        "tenant",
        "purchase_id",
        "first_event_id",
        "correlation_id",
        "livemode",
        "click_id",
        "raw_click_id",
        "amount",
        "currency",
        "value",
        "value_currency",
        "value_note",
        "goal",
        "lead_code",
        "postback_url",
        "origin",
    }
)
DETAIL_PREFIX = "detail_"  # a platform's own facts about the purchase (order number, billing reason, …)
OUTCOME_FIELDS = frozenset(
    {
        "trafficstars_http_status",
        "trafficstars_answer",
        "trafficstars_reason",
        "last_attempt_at",
        "next_attempt_at",
        "sent_at",
    }
)
REVERSAL_FIELDS = frozenset({"reversal_amount", "reversal_currency"})
DISPUTE_FIELDS = frozenset({"dispute_status", "dispute_event_id"})  # opened, won, lost: the dispute as it stands
REVERSAL_FACTS = REVERSAL_FIELDS | DISPUTE_FIELDS | {"reversal_kind", "reversal_event_id", "reversed_at"}
LEASE_FIELDS = ("lease_token", "lease_until")
DUE_FIELDS = ("due_shard", "due_at")


def _in(*states: Iterable[Status]) -> frozenset[Status]:
    return frozenset().union(*states)


@dataclass(frozen=True)
class ConversionRecord:
    """One conversion's item, typed. ``metadata['in']`` says in which states a field may exist: the lease only
    while ``sending``, the due time only while waiting or in flight; ``violations`` checks an item against it."""

    pk: str
    status: Status
    source: str = ""
    tenant: str = DEFAULT_TENANT  # absent on the default tenant's records, as before tenants existed
    purchase_id: str = ""
    first_event_id: str | None = None
    correlation_id: str | None = None  # the platform's event id that created the record
    livemode: bool = True
    click_id: str | None = None
    raw_click_id: str | None = None  # kept (shortened) when the click id was not valid
    amount: str | None = None  # what the buyer paid, in ``currency``
    currency: str | None = None
    value: str | None = None  # what is reported to TrafficStars, in ``value_currency``
    value_currency: str | None = None
    value_note: str | None = None
    goal: str = "purchase"
    lead_code: str | None = None
    postback_url: str | None = None  # as sent, with key=***
    origin: str = "webhook"  # absent for a webhook's record; `reconcile` when a reconcile run found it
    details: Mapping[str, str] = field(default_factory=dict)  # the detail_* attributes
    received_at: str = ""
    created_epoch: int = 0
    updated_at: str = ""
    expires_at: int = 0
    event_ids: frozenset[str] = frozenset()
    event_types: frozenset[str] = frozenset()
    deliveries: int = 0
    attempts: int = 0  # claims taken: each is at most one GET (two after a refetched key)
    replays: int = 0
    lease_token: str | None = field(default=None, metadata={"in": LEASED})
    lease_until: Decimal | None = field(default=None, metadata={"in": LEASED})
    due_shard: str | None = field(default=None, metadata={"in": IN_FLIGHT})
    due_at: Decimal | None = field(default=None, metadata={"in": IN_FLIGHT})
    attempt_log: tuple[Mapping[str, Any], ...] = ()
    trafficstars_http_status: int | None = None
    trafficstars_answer: str | None = None
    trafficstars_reason: str | None = None
    last_attempt_at: str | None = None
    next_attempt_at: str | None = None
    sent_at: str | None = None
    reversal_kind: str | None = None
    reversal_event_id: str | None = None
    reversed_at: str | None = None
    reversal_amount: str | None = None
    reversal_currency: str | None = None
    dispute_status: str | None = None
    dispute_event_id: str | None = None
    # What the record was when it was reversed; a send that was in flight then writes its outcome here.
    status_before_reversal: str | None = field(default=None, metadata={"in": _in(REVERSED)})

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> ConversionRecord:
        """The record of a deserialized item (Decimals for numbers, sets for string sets)."""
        known = {f.name for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        details: dict[str, str] = {}
        for name, value in item.items():
            if name.startswith(DETAIL_PREFIX):
                details[name[len(DETAIL_PREFIX) :]] = str(value)
            elif name in known:
                values[name] = value
        values["status"] = Status(str(values.get("status")))
        values["details"] = details
        for name in ("event_ids", "event_types"):
            values[name] = frozenset(values.get(name) or ())
        for name in ("created_epoch", "expires_at", "deliveries", "attempts", "replays"):
            values[name] = int(values.get(name) or 0)
        if values.get("trafficstars_http_status") is not None:
            values["trafficstars_http_status"] = int(values["trafficstars_http_status"])
        values["attempt_log"] = tuple(values.get("attempt_log") or ())
        return cls(**values)

    @property
    def is_final(self) -> bool:
        """Nothing will be sent for this record again (an operator's replay aside)."""
        return self.status in FINAL


def violations(item: Mapping[str, Any]) -> list[str]:
    """What is wrong with a stored item, by the declarations above: an unknown status, or a field that may not
    exist in the item's state (a lease on a final record, a final record in the due index). Empty when sound.
    The model-based test checks every item after every step with it."""
    try:
        status = Status(str(item.get("status")))
    except ValueError:
        return [f"{item.get('pk')}: unknown status {item.get('status')!r}"]
    found = []
    for spec in dataclasses.fields(ConversionRecord):
        allowed = spec.metadata.get("in")
        if allowed is not None and spec.name in item and status not in allowed:
            found.append(f"{item.get('pk')}: {spec.name} on a {status} record")
    for name, states in (("lease_token", LEASED), ("due_at", IN_FLIGHT)):
        if status in states and name not in item:
            found.append(f"{item.get('pk')}: a {status} record without {name}")
    if ("due_shard" in item) != ("due_at" in item):
        found.append(f"{item.get('pk')}: half a due index key")
    return found


class Guard(Enum):
    """What a from-state needs besides the status itself."""

    NONE = "none"
    DUE = "due"  # its due time has come (due_at <= now)
    LEASE_EXPIRED = "lease_expired"  # its sender is presumed dead (lease_until < now)
    LEASE_HELD = "lease_held"  # the caller holds its lease (lease_token = the claim's token)
    WAS_SENDING = "was_sending"  # reversed while a send was in flight (status_before_reversal = sending)


ABSENT = "absent"  # the from-state of a transition that creates the record
ANY = "any"  # every existing record, whatever its status
Source = Status | str


@dataclass(frozen=True)
class Transition:
    """One arrow of the diagram: from which states (each with its guard), to which state (``None``: the status
    is unchanged; several: the caller names one), which fields the caller may set, which it removes, and what
    the transition writes by itself (a lease, a due time, the event's ids, an attempt-log entry)."""

    name: str
    sources: Mapping[Source, Guard]
    targets: frozenset[Status] = frozenset()
    writes: frozenset[str] = frozenset()
    removes: tuple[str, ...] = ()
    takes_lease: bool = False  # sets lease_token/lease_until, due_at = lease_until, attempts + 1
    schedules: bool = False  # sets due_at (the caller's) and the due shard
    notes_event: bool = False  # adds the event's id and type
    counts_delivery: bool = False  # one more delivery of the purchase (not of a reversal, not an attempt)
    logs_attempts: bool = False  # appends to attempt_log
    counts_replay: bool = False
    keeps_status_before_reversal: bool = False  # status_before_reversal = the status it leaves
    writes_status_before_reversal: bool = False  # status_before_reversal = the target the caller names


def _from(states: Iterable[Status], guard: Guard = Guard.NONE) -> dict[Source, Guard]:
    return dict.fromkeys(states, guard)


RECORD = Transition(
    "record",
    {ABSENT: Guard.NONE},
    frozenset({Status.SENDING}),
    CONVERSION_FIELDS,
    takes_lease=True,
    notes_event=True,
    counts_delivery=True,
)
HOLD = Transition("hold", {ABSENT: Guard.NONE}, HELD, CONVERSION_FIELDS, notes_event=True, counts_delivery=True)
NOTE_DELIVERY = Transition("note_delivery", {ANY: Guard.NONE}, notes_event=True, counts_delivery=True)
UPGRADE = Transition(
    "upgrade",
    _from(UPGRADABLE),
    frozenset({Status.SENDING}),
    CONVERSION_FIELDS,
    takes_lease=True,
    notes_event=True,
    counts_delivery=True,
)
CLAIM = Transition(
    "claim",
    {Status.RETRY_PENDING: Guard.DUE, Status.SENDING: Guard.LEASE_EXPIRED},
    frozenset({Status.SENDING}),
    takes_lease=True,
)
FINISH = Transition(
    "finish",
    _from(LEASED, Guard.LEASE_HELD),
    DONE_SENDING,
    OUTCOME_FIELDS,
    removes=LEASE_FIELDS + DUE_FIELDS,
    logs_attempts=True,
)
RETRY = Transition(
    "retry",
    _from(LEASED, Guard.LEASE_HELD),
    frozenset({Status.RETRY_PENDING}),
    OUTCOME_FIELDS,
    removes=LEASE_FIELDS,
    schedules=True,
    logs_attempts=True,
)
LATE_OUTCOME = Transition(
    "late_outcome",
    _from(REVERSED, Guard.WAS_SENDING),
    writes=OUTCOME_FIELDS,
    logs_attempts=True,
    writes_status_before_reversal=True,
)
REVERSE = Transition(
    "reverse",
    {ANY: Guard.NONE},
    REVERSED,
    REVERSAL_FACTS,
    removes=LEASE_FIELDS + DUE_FIELDS,
    notes_event=True,
    keeps_status_before_reversal=True,
)
# A reversal of a purchase not recorded (yet): a platform retrying the paid event after an outage may deliver
# it after its refund. The record is born reversed, so that late delivery is a duplicate and is never sent.
TOMBSTONE = Transition(
    "tombstone",
    {ABSENT: Guard.NONE},
    REVERSED,
    REVERSAL_FACTS | {"source", "tenant", "purchase_id", "correlation_id"},
    notes_event=True,
)
NOTE_PARTIAL_REFUND = Transition(
    "note_partial_refund",
    {ANY: Guard.NONE},
    writes=REVERSAL_FIELDS | {"reversal_kind", "reversal_event_id", "reversed_at"},
    notes_event=True,
)
# A dispute decided in the merchant's favour: noted; a conversion it stopped stays stopped (replay can send it).
NOTE_DISPUTE = Transition("note_dispute", {ANY: Guard.NONE}, writes=DISPUTE_FIELDS, notes_event=True)
REOPEN = Transition("reopen", _from(REPLAYABLE), frozenset({Status.RETRY_PENDING}), schedules=True, counts_replay=True)
# Records written before this module existed: a redelivery could put a finished record back in the due index.
# The worker, finding one when its claim is refused, takes it out (nothing else about the record changes).
LEAVE_DUE_INDEX = Transition("leave_due_index", _from(FINAL), removes=LEASE_FIELDS + DUE_FIELDS)
TRANSITIONS = (
    RECORD,
    HOLD,
    NOTE_DELIVERY,
    UPGRADE,
    CLAIM,
    FINISH,
    RETRY,
    LATE_OUTCOME,
    REVERSE,
    TOMBSTONE,
    NOTE_PARTIAL_REFUND,
    NOTE_DISPUTE,
    REOPEN,
    LEAVE_DUE_INDEX,
)


class Step(NamedTuple):
    """What a caller gives a transition: the target (when there is a choice) and the values it writes."""

    now: float
    target: Status | None = None
    fields: Mapping[str, Any] = {}
    token: str | None = None  # the lease taken (takes_lease) or held (Guard.LEASE_HELD)
    lease_until: float | None = None
    due_at: float | None = None  # the next due time (schedules)
    event_id: str | None = None
    event_type: str | None = None
    attempts: tuple[Mapping[str, Any], ...] = ()  # attempt-log entries (logs_attempts)
    expires_at: int | None = None  # the record's TTL, set when it is created


def update_for(transition: Transition, step: Step) -> Update:
    """The conditional UpdateItem that performs ``transition`` (in Python values: the store encodes them): its
    condition admits exactly the declared from-states with their guards, and its SET/ADD/REMOVE clauses are
    exactly the declared fields."""
    update = Update()
    target = _target(transition, step)
    update.set("updated_at", iso(step.now), "now_iso")
    unknown = [f for f in step.fields if f not in transition.writes and not _is_detail(f, transition)]
    if unknown:
        raise ValueError(f"transition {transition.name} does not write {', '.join(sorted(unknown))}")
    for attribute, v in step.fields.items():
        if v is not None:
            update.set(attribute, v)
    if target is not None:
        if transition.keeps_status_before_reversal:
            kept = update.name("status_before_reversal")
            update.set_to("status_before_reversal", f"if_not_exists({kept}, {update.name('status')})")
        update.set("status", str(target), "to")
    if ABSENT in transition.sources:
        update.set("received_at", iso(step.now)).set("created_epoch", int(step.now)).set("expires_at", step.expires_at)
        if not transition.takes_lease:
            update.set("attempts", 0)
    if transition.takes_lease:
        if step.token is None or step.lease_until is None:
            raise ValueError(f"transition {transition.name} needs a token and a lease end")
        until = update.value(step.lease_until, "until")
        update.set("lease_token", step.token, "token").set_to("lease_until", until)
        update.set("due_shard", DUE_SHARD).set_to("due_at", until).add("attempts", 1)
    if transition.schedules:
        if step.due_at is None:
            raise ValueError(f"transition {transition.name} needs a due time")
        update.set("due_shard", DUE_SHARD).set("due_at", step.due_at, "due")
    if transition.notes_event:
        if step.event_id is None:
            raise ValueError(f"transition {transition.name} needs the event's id")
        update.add("event_ids", {step.event_id})
        if step.event_type is not None:
            update.add("event_types", {step.event_type})
        if transition.counts_delivery:
            update.add("deliveries", 1)
    if transition.logs_attempts:
        empty, entries = update.value([]), update.value(list(step.attempts))
        update.set_to("attempt_log", f"list_append(if_not_exists({update.name('attempt_log')}, {empty}), {entries})")
    if transition.counts_replay:
        update.add("replays", 1)
    if transition.writes_status_before_reversal:
        if step.target is None:
            raise ValueError(f"transition {transition.name} needs the outcome's status")
        update.set("status_before_reversal", str(step.target), "outcome")
    return update.remove(*transition.removes).when(_condition(transition, step, update))


def _target(transition: Transition, step: Step) -> Status | None:
    if transition.writes_status_before_reversal:
        return None  # the status stays; the outcome goes into status_before_reversal
    if not transition.targets:
        if step.target is not None:
            raise ValueError(f"transition {transition.name} does not change the status")
        return None
    if step.target is None and len(transition.targets) == 1:
        return next(iter(transition.targets))
    if step.target not in transition.targets:
        raise ValueError(f"transition {transition.name} cannot go to {step.target}")
    return step.target


def _is_detail(attribute: str, transition: Transition) -> bool:
    return attribute.startswith(DETAIL_PREFIX) and "source" in transition.writes


def _condition(transition: Transition, step: Step, update: Update) -> str:
    """The condition expression admitting exactly ``transition.sources``."""
    name, value = update.name, update.value
    alternatives: list[str] = []
    for source, guard in transition.sources.items():
        if source == ABSENT:
            alternatives.append(f"attribute_not_exists({name('pk')})")
            continue
        if source == ANY:
            alternatives.append(f"attribute_exists({name('pk')})")
            continue
        clause = f"{name('status')} = {value(str(source), 'from')}"
        if guard is Guard.DUE:
            clause += f" AND {name('due_at')} <= {value(step.now, 'at')}"
        elif guard is Guard.LEASE_EXPIRED:
            clause += f" AND {name('lease_until')} < {value(step.now, 'at')}"
        elif guard is Guard.LEASE_HELD:
            if step.token is None:
                raise ValueError(f"transition {transition.name} needs the claim's token")
            clause += f" AND {name('lease_token')} = {value(step.token, 'held')}"
        elif guard is Guard.WAS_SENDING:
            clause += f" AND {name('status_before_reversal')} = {value(str(Status.SENDING), 'was')}"
        alternatives.append(f"({clause})")
    return " OR ".join(alternatives)


def iso(epoch: float) -> str:
    """UTC ISO-8601 with milliseconds, the form every timestamp in a record has."""
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat(timespec="milliseconds")
