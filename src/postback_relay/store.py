"""The DynamoDB record of each conversion: one item per identity, written before anything is sent.

Every write is a single conditional UpdateItem, so a duplicate costs one call and two concurrent deliveries
of one purchase cannot both win: the first creates the item already claimed for sending; the others see it."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, NamedTuple

from boto3.dynamodb.types import DYNAMODB_CONTEXT, TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError

DUE_INDEX = "due"  # sparse GSI: only records in flight or waiting carry due_shard/due_at
DUE_SHARD = "due"
FINAL_STATUSES = frozenset({"sent", "rejected", "failed", "refunded", "charged_back"})
NOT_FORWARDED = frozenset({"no_click_id", "invalid_click_id", "test_mode"})
CLAIMABLE = ("retry_pending",)

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


class StoreUnavailable(Exception):
    """DynamoDB could not be written; the webhook is answered 5xx so the sender retries."""


class Claim(NamedTuple):
    """The right to send one conversion until ``lease_until``; outcomes are written only under it."""

    token: str
    lease_until: float
    record: dict[str, Any]


class Begin(NamedTuple):
    """The result of recording a delivery: the claim if this delivery created the record, else the record."""

    created: bool
    claim: Claim | None
    existing: dict[str, Any] | None


class ConversionStore:
    """Data access for the conversions table."""

    def __init__(
        self, client: Any, table_name: str, retention_days: int, clock: Callable[[], float] = time.time
    ) -> None:
        self._client = client
        self._table = table_name
        self._retention_seconds = retention_days * 86_400
        self._clock = clock

    def begin(self, pk: str, fields: Mapping[str, Any], event_id: str, event_type: str, lease_seconds: int) -> Begin:
        """Create the record for a delivery (claimed for sending when ``fields['status']`` is ``sending``),
        or, if it exists, only note the event on it and return the record as it was."""
        now = self._clock()
        token = uuid.uuid4().hex
        initial = dict(fields)
        initial.update(received_at=iso_timestamp(now), created_epoch=int(now), attempts=0, deliveries=0)
        if initial["status"] == "sending":
            until = now + lease_seconds
            initial.update(lease_token=token, lease_until=until, attempts=1, due_shard=DUE_SHARD, due_at=until)
        names: dict[str, str] = {"#event_ids": "event_ids", "#event_types": "event_types", "#deliveries": "deliveries"}
        values: dict[str, Any] = {":event_id": {event_id}, ":event_type": {event_type}, ":one": 1}
        assignments = _set_fields(
            {k: v for k, v in initial.items() if k != "deliveries"}, "f", names, values, keep_existing=True
        )
        names.update({"#updated_at": "updated_at", "#expires_at": "expires_at"})
        values.update({":updated_at": iso_timestamp(now), ":expires_at": int(now) + self._retention_seconds})
        assignments += ["#updated_at = :updated_at", "#expires_at = :expires_at"]
        old = self._update(
            pk,
            "SET " + ", ".join(assignments) + " ADD #event_ids :event_id, #event_types :event_type, #deliveries :one",
            names,
            values,
            return_values="ALL_OLD",
        )
        if old is None:
            return Begin(False, None, None)  # unreachable: an unconditional update always succeeds
        if not old:
            record = {**initial, "pk": pk, "deliveries": 1}
            claim = Claim(token, initial["lease_until"], record) if initial["status"] == "sending" else None
            return Begin(True, claim, None)
        return Begin(False, None, old)

    def claim(
        self, pk: str, lease_seconds: int, upgrade: Mapping[str, Any] | None = None, due_only: bool = False
    ) -> Claim | None:
        """Take the right to send: from ``retry_pending`` (with ``due_only``, only once its time has come), from
        ``sending`` whose lease has expired, or (with ``upgrade``, the fields of a later event that has a click
        id) from ``no_click_id``/``invalid_click_id``. The lease's end is also the record's due time, so a
        sender that dies holding it is found by the sweep."""
        now = self._clock()
        token = uuid.uuid4().hex
        names = {
            "#status": "status",
            "#lease_token": "lease_token",
            "#lease_until": "lease_until",
            "#attempts": "attempts",
            "#updated_at": "updated_at",
            "#due_shard": "due_shard",
            "#due_at": "due_at",
        }
        values: dict[str, Any] = {
            ":sending": "sending",
            ":token": token,
            ":until": now + lease_seconds,
            ":one": 1,
            ":updated_at": iso_timestamp(now),
            ":due_shard": DUE_SHARD,
        }
        assignments = [
            "#status = :sending",
            "#lease_token = :token",
            "#lease_until = :until",
            "#updated_at = :updated_at",
            "#due_shard = :due_shard",
            "#due_at = :until",
        ]
        if upgrade:
            condition = "#status IN (:no_click_id, :invalid_click_id)"
            values.update({":no_click_id": "no_click_id", ":invalid_click_id": "invalid_click_id"})
            assignments += _set_fields(upgrade, "u", names, values)
        else:
            retry = "(#status = :retry AND #due_at <= :now)" if due_only else "#status = :retry"
            condition = f"{retry} OR (#status = :sending AND #lease_until < :now)"
            values.update({":retry": "retry_pending", ":now": now})
        record = self._update(
            pk,
            "SET " + ", ".join(assignments) + " ADD #attempts :one",
            names,
            values,
            condition=condition,
            return_values="ALL_NEW",
        )
        if record is None:
            return None
        return Claim(token, values[":until"], record)

    def finish(
        self,
        pk: str,
        claim: Claim,
        status: str,
        fields: Mapping[str, Any],
        attempts: list[dict[str, Any]],
        due_at: float | None = None,
    ) -> bool:
        """Write an attempt's outcome under the claim; False if the lease was lost (another sender holds it).
        ``due_at`` keeps a ``retry_pending`` record in the due index; any other outcome leaves it."""
        now = self._clock()
        names = {
            "#status": "status",
            "#lease_token": "lease_token",
            "#lease_until": "lease_until",
            "#attempt_log": "attempt_log",
            "#updated_at": "updated_at",
            "#due_shard": "due_shard",
            "#due_at": "due_at",
        }
        values: dict[str, Any] = {
            ":status": status,
            ":token": claim.token,
            ":entry": attempts,
            ":empty": [],
            ":updated_at": iso_timestamp(now),
        }
        assignments = [
            "#status = :status",
            "#updated_at = :updated_at",
            "#attempt_log = list_append(if_not_exists(#attempt_log, :empty), :entry)",
        ]
        assignments += _set_fields(fields, "o", names, values)
        removals = ["#lease_token", "#lease_until"]
        if due_at is not None:
            values.update({":due_shard": DUE_SHARD, ":due_at": due_at})
            assignments += ["#due_shard = :due_shard", "#due_at = :due_at"]
        else:
            removals += ["#due_shard", "#due_at"]
        result = self._update(
            pk,
            "SET " + ", ".join(assignments) + " REMOVE " + ", ".join(removals),
            names,
            values,
            condition="#lease_token = :token",
            return_values="NONE",
        )
        return result is not None

    def mark_reversal(self, pks: tuple[str, ...], kind: str, event_id: str, fields: Mapping[str, Any]) -> str | None:
        """Mark the first existing record among ``pks`` as refunded/charged back; returns its key or None.

        A partial refund is noted without changing the status; a full refund or chargeback also stops a
        conversion that has not been sent yet from ever being sent."""
        now = self._clock()
        for pk in pks:
            names = {
                "#reversal_kind": "reversal_kind",
                "#reversal_event_id": "reversal_event_id",
                "#reversed_at": "reversed_at",
                "#event_ids": "event_ids",
                "#updated_at": "updated_at",
                "#pk": "pk",
            }
            values: dict[str, Any] = {
                ":kind": kind,
                ":event_id": event_id,
                ":at": iso_timestamp(now),
                ":ids": {event_id},
                ":updated_at": iso_timestamp(now),
            }
            assignments = [
                "#reversal_kind = :kind",
                "#reversal_event_id = :event_id",
                "#reversed_at = :at",
                "#updated_at = :updated_at",
            ]
            if kind != "partially_refunded":
                names.update({"#status": "status", "#status_before_reversal": "status_before_reversal"})
                values[":status"] = kind
                assignments += [
                    "#status_before_reversal = if_not_exists(#status_before_reversal, #status)",
                    "#status = :status",
                ]
                names.update({"#due_shard": "due_shard", "#due_at": "due_at"})
            assignments += _set_fields(fields, "r", names, values)
            removal = " REMOVE #due_shard, #due_at" if "#due_shard" in names else ""
            result = self._update(
                pk,
                "SET " + ", ".join(assignments) + " ADD #event_ids :ids" + removal,
                names,
                values,
                condition="attribute_exists(#pk)",
                return_values="NONE",
            )
            if result is not None:
                return pk
        return None

    def reopen(self, pk: str, from_statuses: tuple[str, ...]) -> bool:
        """Put a record back to ``retry_pending``, due now, if its status is one of ``from_statuses`` (replay).
        A record that was sent in the meantime is left alone, so replaying twice still sends once."""
        now = self._clock()
        names = {
            "#status": "status",
            "#due_shard": "due_shard",
            "#due_at": "due_at",
            "#replays": "replays",
            "#updated_at": "updated_at",
        }
        values: dict[str, Any] = {
            ":retry": "retry_pending",
            ":due_shard": DUE_SHARD,
            ":now": now,
            ":one": 1,
            ":updated_at": iso_timestamp(now),
        }
        placeholders = []
        for index, status in enumerate(from_statuses):
            values[f":from{index}"] = status
            placeholders.append(f":from{index}")
        result = self._update(
            pk,
            "SET #status = :retry, #due_shard = :due_shard, #due_at = :now, #updated_at = :updated_at "
            "ADD #replays :one",
            names,
            values,
            condition=f"#status IN ({', '.join(placeholders)})",
            return_values="NONE",
        )
        return result is not None

    def due(self, before: float, limit: int) -> list[str]:
        """Keys of records in flight or waiting whose due time is before ``before``, oldest first: the
        conversions a lost message or a crashed sender would otherwise strand."""
        keys: list[str] = []
        request: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": DUE_INDEX,
            "KeyConditionExpression": "#due_shard = :due_shard AND #due_at <= :before",
            "ExpressionAttributeNames": {"#due_shard": "due_shard", "#due_at": "due_at"},
            "ExpressionAttributeValues": {
                ":due_shard": {"S": DUE_SHARD},
                ":before": _serializer.serialize(_storable(before)),
            },
        }
        try:
            while len(keys) < limit:
                response = self._client.query(**request, Limit=min(1000, limit - len(keys)))
                keys += [item["pk"]["S"] for item in response.get("Items", [])]
                if "LastEvaluatedKey" not in response:
                    break
                request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        except (ClientError, BotoCoreError) as exc:
            raise StoreUnavailable(f"DynamoDB query failed: {_error_code(exc)}") from None
        return keys

    def select(
        self, statuses: tuple[str, ...] = (), since: str | None = None, click_id: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """Records matching every given filter (status, ``updated_at`` ≥ an ISO time, click id), by Scan:
        for operators' replays and listings, not for the request path."""
        filters: list[str] = []
        names: dict[str, str] = {}
        values: dict[str, Any] = {}
        if statuses:
            names["#status"] = "status"
            placeholders = []
            for index, status in enumerate(statuses):
                values[f":s{index}"] = {"S": status}
                placeholders.append(f":s{index}")
            filters.append(f"#status IN ({', '.join(placeholders)})")
        if since:
            names["#updated_at"] = "updated_at"
            values[":since"] = {"S": since}
            filters.append("#updated_at >= :since")
        if click_id:
            names["#click_id"] = "click_id"
            values[":click_id"] = {"S": click_id}
            filters.append("#click_id = :click_id")
        request: dict[str, Any] = {"TableName": self._table, "ConsistentRead": True}
        if filters:
            request.update(
                FilterExpression=" AND ".join(filters), ExpressionAttributeNames=names, ExpressionAttributeValues=values
            )
        try:
            for page in self._client.get_paginator("scan").paginate(**request):
                for item in page.get("Items", []):
                    yield _from_item(item)
        except (ClientError, BotoCoreError) as exc:
            raise StoreUnavailable(f"DynamoDB scan failed: {_error_code(exc)}") from None

    def get(self, pk: str) -> dict[str, Any] | None:
        """The record, read consistently (used by tests and operators)."""
        try:
            response = self._client.get_item(TableName=self._table, Key={"pk": {"S": pk}}, ConsistentRead=True)
        except (ClientError, BotoCoreError) as exc:
            raise StoreUnavailable(f"DynamoDB get_item failed: {_error_code(exc)}") from None
        item = response.get("Item")
        return _from_item(item) if item else None

    def _update(
        self,
        pk: str,
        expression: str,
        names: Mapping[str, str],
        values: Mapping[str, Any],
        *,
        condition: str | None = None,
        return_values: str,
    ) -> dict[str, Any] | None:
        """One UpdateItem. Returns the returned attributes ({} if none), or None when the condition failed."""
        request: dict[str, Any] = {
            "TableName": self._table,
            "Key": {"pk": {"S": pk}},
            "UpdateExpression": expression,
            "ExpressionAttributeNames": dict(names),
            "ExpressionAttributeValues": {name: to_wire(value) for name, value in values.items()},
            "ReturnValues": return_values,
        }
        if condition:
            request["ConditionExpression"] = condition
        try:
            response = self._client.update_item(**request)
        except ClientError as exc:
            if _error_code(exc) == "ConditionalCheckFailedException":
                return None
            raise StoreUnavailable(f"DynamoDB update_item failed: {_error_code(exc)}") from None
        except BotoCoreError as exc:
            raise StoreUnavailable(f"DynamoDB update_item failed: {type(exc).__name__}") from None
        return _from_item(response.get("Attributes") or {})


def _set_fields(
    fields: Mapping[str, Any],
    prefix: str,
    names: dict[str, str],
    values: dict[str, Any],
    keep_existing: bool = False,
) -> list[str]:
    """SET clauses for ``fields`` (None values skipped), registering their placeholders in ``names`` and
    ``values``; with ``keep_existing``, an attribute already on the item keeps its value."""
    clauses: list[str] = []
    for index, (name, value) in enumerate(fields.items()):
        if value is None:
            continue
        names[f"#{prefix}{index}"] = name
        values[f":{prefix}{index}"] = value
        target = f"if_not_exists(#{prefix}{index}, :{prefix}{index})" if keep_existing else f":{prefix}{index}"
        clauses.append(f"#{prefix}{index} = {target}")
    return clauses


def _storable(value: Any) -> Any:
    """DynamoDB numbers are Decimals: floats (timestamps, durations) are converted, recursively."""
    if isinstance(value, float):
        return Decimal(str(round(value, 3)))
    if isinstance(value, dict):
        return {key: _storable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_storable(item) for item in value]
    return value


def to_wire(value: Any) -> dict[str, Any]:
    """``value`` in DynamoDB's wire format, exactly as ``TypeSerializer().serialize(_storable(value))``.

    The types a record holds take a short path: TypeSerializer tries its type tests one by one (~2 µs a
    value, and a record write carries ~25 values); anything else still goes through it."""
    kind = type(value)
    if kind is str:
        return {"S": value}
    if kind is int or kind is Decimal:
        return {"N": _number(value)}
    if kind is float:
        return {"N": _number(Decimal(str(round(value, 3))))}
    if kind is bool:
        return {"BOOL": value}
    if value is None:
        return {"NULL": True}
    if kind is dict:
        return {"M": {key: to_wire(item) for key, item in value.items()}}
    if kind is list:
        return {"L": [to_wire(item) for item in value]}
    if kind is set and value and all(type(item) is str for item in value):
        return {"SS": list(value)}
    return _serializer.serialize(_storable(value))  # type: ignore[no-any-return]


def from_wire(value: Mapping[str, Any]) -> Any:
    """A wire-format value as Python, exactly as ``TypeDeserializer().deserialize(value)``, shortened the
    same way for the types a record holds."""
    if len(value) == 1:
        ((kind, inner),) = value.items()
        if kind == "S" or kind == "BOOL":
            return inner
        if kind == "N":
            return DYNAMODB_CONTEXT.create_decimal(inner)
        if kind == "NULL":
            return None
        if kind == "M":
            return {key: from_wire(item) for key, item in inner.items()}
        if kind == "L":
            return [from_wire(item) for item in inner]
        if kind == "SS":
            return set(inner)
    return _deserializer.deserialize(value)


def _number(value: int | Decimal) -> str:
    number = str(DYNAMODB_CONTEXT.create_decimal(value))
    if number in ("Infinity", "NaN"):
        raise TypeError("Infinity and NaN not supported")
    return number


def _from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    return {name: from_wire(value) for name, value in item.items()}


def _error_code(exc: Exception) -> str:
    """The error code, and for a validation error its message (our values never include a secret)."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "ClientError"))
        return f"{code}: {str(error.get('Message', ''))[:200]}" if code == "ValidationException" else code
    return type(exc).__name__


def iso_timestamp(epoch: float) -> str:
    """UTC ISO-8601 with milliseconds, the form every timestamp in a record has."""
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat(timespec="milliseconds")
