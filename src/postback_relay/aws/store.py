"""The DynamoDB record of each conversion: one item per identity, written before anything is sent, and
changed only by the transitions declared in `record.py`.

Each transition is one conditional UpdateItem whose condition is the transition's from-states and guards,
so two concurrent deliveries of one purchase cannot both create it, a refund that lands mid-send cannot be
overwritten by the send's outcome, and a final record leaves the due index in the same write that makes it
final. A refused transition returns the record as it was (``ReturnValuesOnConditionCheckFailure``), so the
caller decides what to do next without another read."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from typing import Any, NamedTuple

from botocore.exceptions import BotoCoreError, ClientError

from postback_relay.aws.errors import describe, error_code
from postback_relay.aws.wire import from_item, from_wire, to_wire
from postback_relay.core.expression import Expression, Update
from postback_relay.core.lifecycle import alias_identity
from postback_relay.core.record import (
    CLAIM,
    DUE_SHARD,
    FINISH,
    HOLD,
    LATE_OUTCOME,
    LEAVE_DUE_INDEX,
    NOTE_DELIVERY,
    NOTE_DISPUTE,
    NOTE_PARTIAL_REFUND,
    RECORD,
    REOPEN,
    RETRY,
    REVERSE,
    REVERSED,
    TOMBSTONE,
    UPGRADE,
    ConversionRecord,
    Status,
    Step,
    Transition,
    iso,
    update_for,
)
from postback_relay.core.tenant import DEFAULT_TENANT, tenant_of

DUE_INDEX = "due"  # sparse GSI: only records in flight or waiting carry due_shard/due_at


class StoreUnavailable(Exception):
    """DynamoDB could not be written; the webhook is answered 5xx so the sender retries."""


class Claim(NamedTuple):
    """The right to send one conversion until ``lease_until``; outcomes are written only under it."""

    token: str
    lease_until: float
    record: ConversionRecord


class Applied(NamedTuple):
    """A transition's result: whether it happened, and the record after it (or as it was, when refused;
    None when there is no record)."""

    done: bool
    record: ConversionRecord | None


class Due(NamedTuple):
    """A record the due index holds: its key and when it is due."""

    pk: str
    due_at: Decimal


class Resolved(NamedTuple):
    """What a reversal's ids lead to: the ones recorded, and the conversions their aliases name."""

    recorded: tuple[str, ...]
    aliased: tuple[str, ...]


class SubscriptionMemory(NamedTuple):
    """What the relay remembers of a subscription: the click id that started it, its first paid payment."""

    click_id: str | None
    first_paid: str | None


class ConversionStore:
    """Executes the record's transitions against the conversions table; reads for operators and tests.

    ``retention_days`` (the TTL of what it creates) is write-time policy: a store that only reads, replays
    or claims needs none, and one built without it refuses to create an item."""

    def __init__(
        self,
        client: Any,
        table_name: str,
        retention_days: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._table = table_name
        self._retention_seconds = None if retention_days is None else retention_days * 86_400
        self._clock = clock

    def create(
        self, pk: str, status: Status, fields: Mapping[str, Any], event_id: str, event_type: str, lease_seconds: int
    ) -> Claim | Applied:
        """Create the record of a first delivery: claimed for sending (``sending``) or held (no click id, test
        mode). A Claim when it was created for sending; otherwise Applied, whose record is the existing one
        when the purchase was recorded before (``done`` False)."""
        now = self._clock()
        token = uuid.uuid4().hex
        held = status is not Status.SENDING
        step = Step(
            now,
            target=status,
            fields=fields,
            token=None if held else token,
            lease_until=None if held else now + lease_seconds,
            event_id=event_id,
            event_type=event_type,
            expires_at=self._expires_at(now),
        )
        applied = self.apply(HOLD if held else RECORD, pk, step)
        if not held and applied.record is not None and (applied.done or _ours(applied, token)):
            return Claim(token, now + lease_seconds, applied.record)
        return applied

    def upgrade(
        self, pk: str, fields: Mapping[str, Any], event_id: str, event_type: str, lease_seconds: int
    ) -> Claim | None:
        """Claim a record that had no (valid) click id with a later event's fields that have one."""
        now = self._clock()
        token = uuid.uuid4().hex
        step = Step(
            now, fields=fields, token=token, lease_until=now + lease_seconds, event_id=event_id, event_type=event_type
        )
        applied = self.apply(UPGRADE, pk, step)
        if applied.record is not None and (applied.done or _ours(applied, token)):
            return Claim(token, now + lease_seconds, applied.record)
        return None

    def note_delivery(self, pk: str, event_id: str, event_type: str) -> ConversionRecord | None:
        """Note a duplicate delivery (its event id and type, one more delivery) and nothing else."""
        return self.apply(NOTE_DELIVERY, pk, Step(self._clock(), event_id=event_id, event_type=event_type)).record

    def claim(self, pk: str, lease_seconds: int) -> Claim | Applied:
        """Take the right to send: from ``retry_pending`` once it is due, or from ``sending`` whose lease has
        expired (its sender died). The lease's end is also the record's due time, so a sender that dies
        holding it is found by the sweep. Applied (with the record as it is) when it is not claimable."""
        now = self._clock()
        token = uuid.uuid4().hex
        applied = self.apply(CLAIM, pk, Step(now, token=token, lease_until=now + lease_seconds))
        if applied.record is not None and (applied.done or _ours(applied, token)):
            return Claim(token, now + lease_seconds, applied.record)
        return applied

    def finish(
        self,
        pk: str,
        claim: Claim,
        status: Status,
        fields: Mapping[str, Any],
        attempts: list[dict[str, Any]],
        due_at: float | None = None,
    ) -> Applied:
        """Write an attempt's outcome under the claim: sent, rejected or failed (leaving the due index), or
        retry_pending due at ``due_at``. Not done when the claim no longer holds: another sender took the
        lease, or the purchase was reversed meanwhile, in which case the attempt is still logged on the
        reversed record and ``status_before_reversal`` says what became of the send. The record as it is."""
        now = self._clock()
        transition = RETRY if status is Status.RETRY_PENDING else FINISH
        step = Step(now, target=status, fields=fields, token=claim.token, due_at=due_at, attempts=tuple(attempts))
        applied = self.apply(transition, pk, step)
        record = applied.record
        if not applied.done and record is not None and attempts and _logged(record, attempts):
            return Applied(True, record)  # our own write, retried by botocore after its answer was lost
        if not applied.done and record is not None and record.status_before_reversal == "sending":
            late = self.apply(LATE_OUTCOME, pk, step)
            return Applied(False, late.record)
        return applied

    def mark_reversal(self, pks: tuple[str, ...], kind: str, event_id: str, fields: Mapping[str, Any]) -> list[str]:
        """Mark every existing record among ``pks`` as refunded/charged back/cancelled; returns their keys. A
        partial refund is noted without changing the status, and so is a dispute won; any other reversal
        (a lost dispute is a chargeback) is final for sending: it takes the record out of the due index and
        drops any lease, so no send can finish it."""
        now = self._clock()
        marked: list[str] = []
        for pk in dict.fromkeys(pks):
            applied = self.apply(*_reversal_step(pk, kind, event_id, fields, now))
            if applied.done:
                marked.append(pk)
        return marked

    def tombstone(
        self, pk: str, source: str, purchase_id: str, kind: str, event_id: str, fields: Mapping[str, Any]
    ) -> bool:
        """Record the reversal of a purchase not recorded yet, so its late delivery is born reversed. False
        when a record appeared meanwhile (the caller marks it instead)."""
        now = self._clock()
        _, _, step = _reversal_step(pk, kind, event_id, fields, now)
        facts = {"source": source, "purchase_id": purchase_id, "correlation_id": event_id, **step.fields}
        tenant = tenant_of(pk)
        if tenant != DEFAULT_TENANT:
            facts["tenant"] = tenant
        step = step._replace(fields=facts, expires_at=self._expires_at(now))
        if step.target is None:  # a partial refund or a dispute won of nothing recorded changes nothing
            return False
        return self.apply(TOMBSTONE, pk, step).done

    def add_aliases(self, pk: str, aliases: tuple[str, ...]) -> None:
        """Remember that each of ``aliases`` (another id of the purchase, under its own identity) names the
        conversion ``pk``, so a refund or dispute naming only that id finds it without a scan."""
        for alias in aliases:
            self._remember(alias_identity(alias), "alias", Update().add("alias_of", {pk}))

    def resolve(self, pks: tuple[str, ...]) -> Resolved:
        """Which of ``pks`` are recorded, and every conversion an alias among them names (whether recorded
        or not), in order: one BatchGetItem of the keys and their aliases."""
        items = {item["pk"]: item for item in self._get_many([*pks, *map(alias_identity, pks)])}
        recorded = tuple(pk for pk in dict.fromkeys(pks) if pk in items)
        targets = [target for pk in pks for target in sorted(items.get(alias_identity(pk), {}).get("alias_of", ()))]
        return Resolved(recorded, tuple(pk for pk in dict.fromkeys(targets) if pk not in recorded))

    def reversed_among(self, pks: tuple[str, ...]) -> list[ConversionRecord]:
        """The reversed records among ``pks`` (one BatchGetItem): a refund that named a payment's id before
        the relay knew which purchase it belongs to left one there."""
        records = [ConversionRecord.from_item(item) for item in self._get_many(list(pks))]
        return sorted((record for record in records if record.status in REVERSED), key=lambda record: record.pk)

    def _get_many(self, pks: list[str]) -> list[dict[str, Any]]:
        """The items of ``pks`` that exist, read consistently (BatchGetItem, its unprocessed keys retried)."""
        request: dict[str, Any] = {
            self._table: {"Keys": [{"pk": {"S": pk}} for pk in dict.fromkeys(pks)], "ConsistentRead": True}
        }
        items: list[dict[str, Any]] = []
        try:
            while request:
                response = self._client.batch_get_item(RequestItems=request)
                items += response.get("Responses", {}).get(self._table, [])
                request = response.get("UnprocessedKeys") or {}
        except (ClientError, BotoCoreError) as exc:
            raise StoreUnavailable(f"DynamoDB batch_get_item failed: {describe(exc)}") from None
        return [from_item(item) for item in items]

    def follow_subscription(
        self, subscription_pk: str, click_id: str | None, first_paid: str | None, known_only: bool
    ) -> SubscriptionMemory | None:
        """Update a subscription's memory in one write and return it: the first click id it saw (kept, never
        replaced) and its first paid payment (``first_paid`` claims it if nothing did). ``known_only``: only
        for a subscription the relay has seen start (a cycle of one it never saw is a renewal, whatever the
        memory would say); None then."""
        update = Update()
        for attribute, value in (("remembered_click_id", click_id), ("first_paid", first_paid)):
            if value is not None:
                update.set_once(attribute, value)
        if known_only:
            update.when(f"attribute_exists({update.name('pk')})")
        item = self._remember(subscription_pk, "subscription", update)
        if item is None:
            return None
        return SubscriptionMemory(item.get("remembered_click_id"), item.get("first_paid"))

    def _remember(self, pk: str, kind: str, update: Update) -> dict[str, Any] | None:
        """Write an item that is not a conversion record (``kind``: an alias, a subscription's memory), with
        its kind, when it changed and its TTL, as a record's writes do: the item as written, or None when the
        update's condition refused it."""
        now = self._clock()
        update.set("item", kind).set("updated_at", iso(now), "now").set("expires_at", self._expires_at(now), "expires")
        done, item = self._update_item(pk, update)
        return item if done else None

    def reopen(self, pk: str) -> bool:
        """Put a failed, rejected or waiting record back to ``retry_pending``, due now (replay). A record sent,
        reversed or in flight in the meantime is left alone, so replaying twice still sends once."""
        return self.apply(REOPEN, pk, Step(self._clock(), due_at=self._clock())).done

    def leave_due_index(self, pk: str) -> bool:
        """Take a final record out of the due index (one a redelivery put back there before 0.2.0)."""
        return self.apply(LEAVE_DUE_INDEX, pk, Step(self._clock())).done

    def apply(self, transition: Transition, pk: str, step: Step) -> Applied:
        """Execute one declared transition as one conditional UpdateItem."""
        done, item = self._update_item(pk, update_for(transition, step), ReturnValuesOnConditionCheckFailure="ALL_OLD")
        return Applied(done, ConversionRecord.from_item(item) if item else None)

    def _update_item(self, pk: str, update: Update, **options: str) -> tuple[bool, dict[str, Any] | None]:
        """One UpdateItem: (True, the item as written), or (False, the item as it was when the condition
        refused the write and ``options`` asked for it, else None)."""
        request = {"TableName": self._table, "Key": {"pk": {"S": pk}}, "ReturnValues": "ALL_NEW", **options}
        try:
            response = self._client.update_item(**request, **update.request(to_wire))
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                old = exc.response.get("Item")
                return False, from_item(old) if old else None
            raise StoreUnavailable(f"DynamoDB update_item failed: {describe(exc)}") from None
        except BotoCoreError as exc:
            raise StoreUnavailable(f"DynamoDB update_item failed: {describe(exc)}") from None
        return True, from_item(response.get("Attributes") or {"pk": {"S": pk}})

    def _expires_at(self, now: float) -> int:
        """The TTL of an item written ``now``: only a store given the retention creates items."""
        if self._retention_seconds is None:
            raise ValueError("this ConversionStore was built without retention_days: it cannot create items")
        return int(now) + self._retention_seconds

    def due(self, before: float) -> Iterator[Due]:
        """Every record in flight or waiting whose due time is at or before ``before``, oldest first, page by
        page: the conversions a lost message or a crashed sender would otherwise strand. The index holds no
        final record, so this reads the backlog and nothing else."""
        key = Expression()
        request: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": DUE_INDEX,
            "KeyConditionExpression": f"{key.name('due_shard')} = {key.value(DUE_SHARD, 'shard')} "
            f"AND {key.name('due_at')} <= {key.value(before, 'before')}",
            **key.placeholders(to_wire),
        }
        while True:
            try:
                response = self._client.query(**request)
            except (ClientError, BotoCoreError) as exc:
                raise StoreUnavailable(f"DynamoDB query failed: {describe(exc)}") from None
            for item in response.get("Items", []):
                yield Due(item["pk"]["S"], from_wire(item["due_at"]))
            if "LastEvaluatedKey" not in response:
                return
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def select(
        self, statuses: tuple[str, ...] = (), since: str | None = None, click_id: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """Records matching every given filter, by Scan (`reads.select`): for operators' replays, not for the
        request path (so `reads` is imported here, not at the cold start of a function that never reads)."""
        from postback_relay.aws import reads

        try:
            yield from reads.select(self._client, self._table, statuses, since, click_id)
        except (ClientError, BotoCoreError) as exc:
            raise StoreUnavailable(f"DynamoDB scan failed: {describe(exc)}") from None

    def get(self, pk: str) -> dict[str, Any] | None:
        """The record, read consistently (`reads.get`; used by tests and operators)."""
        from postback_relay.aws import reads

        try:
            return reads.get(self._client, self._table, pk)
        except (ClientError, BotoCoreError) as exc:
            raise StoreUnavailable(f"DynamoDB get_item failed: {describe(exc)}") from None


def _reversal_step(
    pk: str, kind: str, event_id: str, fields: Mapping[str, Any], now: float
) -> tuple[Transition, str, Step]:
    """The transition a reversal of ``kind`` is, and its step: a dispute's outcome is noted, a partial refund
    noted with its amount, anything else reverses the record (a lost dispute as a chargeback)."""
    if kind == "dispute_won":
        facts = {"dispute_status": "won", "dispute_event_id": event_id}
        return NOTE_DISPUTE, pk, Step(now, fields=facts, event_id=event_id)
    reversal = {"reversal_kind": kind, "reversal_event_id": event_id, "reversed_at": iso(now), **fields}
    if kind == "partially_refunded":
        return NOTE_PARTIAL_REFUND, pk, Step(now, fields=reversal, event_id=event_id)
    if kind == "dispute_lost":
        reversal.update(reversal_kind="charged_back", dispute_status="lost", dispute_event_id=event_id)
        return REVERSE, pk, Step(now, target=Status.CHARGED_BACK, fields=reversal, event_id=event_id)
    if kind == "charged_back":
        reversal.update(dispute_status="opened", dispute_event_id=event_id)
    return REVERSE, pk, Step(now, target=Status(kind), fields=reversal, event_id=event_id)


def _ours(applied: Applied, token: str) -> bool:
    """A refused write that had in fact been applied: botocore retries a request whose answer was lost (a
    timeout, a 500), and the retry meets the record the first attempt wrote, lease token and all."""
    return not applied.done and applied.record is not None and applied.record.lease_token == token


def _logged(record: ConversionRecord, attempts: list[dict[str, Any]]) -> bool:
    """The record's attempt log ends with these attempts (by time and outcome: the stored numbers are
    Decimals), so the write that appended them was ours."""
    logged = [(str(e.get("at")), str(e.get("outcome"))) for e in record.attempt_log[-len(attempts) :]]
    return logged == [(str(e.get("at")), str(e.get("outcome"))) for e in attempts]
