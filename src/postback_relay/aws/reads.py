"""Reading conversion records for operators: one by key or purchase id, every one of a click id (through the
sparse `click_id` index), and the recent ones (a filtered Scan, sorted here).

A Scan reads the whole table whatever the filters: one read request unit per 8 KB of items read
(eventually consistent), so a table of 100,000 records of ~2 KB costs ~25,000 RRU per `recent`, a fraction
of a cent on demand. Fine for an operator's command; nothing in the relay's own path scans."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from boto3.dynamodb.types import TypeDeserializer

from postback_relay.core.conversion import CLICK_ID_PATTERN
from postback_relay.core.record import Status

CLICK_ID_INDEX = "click_id"
STATUSES = tuple(str(status) for status in Status)  # every status `recent --status` accepts
# What `recent` reads of each record: enough for its table, a fraction of a record with its attempt log.
RECENT_FIELDS = (
    "pk",
    "source",
    "purchase_id",
    "status",
    "click_id",
    "value",
    "value_currency",
    "attempts",
    "received_at",
    "updated_at",
    "trafficstars_answer",
    "correlation_id",
)

_deserializer = TypeDeserializer()


@dataclass(frozen=True)
class Page:
    """Recent records, newest first: the ``limit`` shown and how many matched in all."""

    records: list[dict[str, Any]]
    matched: int
    scanned: int


def is_click_id(reference: str) -> bool:
    """True for a TrafficStars click id (40 hex characters)."""
    return CLICK_ID_PATTERN.fullmatch(reference.strip().lower()) is not None


def find(client: Any, table: str, reference: str, sources: Iterable[str]) -> list[dict[str, Any]]:
    """The records ``reference`` names, newest first: a click id (every conversion of that click), a record
    key (``stripe#pi_…``), or a purchase id (``pi_…``, tried under each source)."""
    reference = reference.strip()
    if is_click_id(reference):
        keys = _keys_of_click(client, table, reference.lower())
    elif "#" in reference:
        keys = [reference]
    else:
        keys = [f"{source}#{reference}" for source in sources]
    found = [record for record in (_get(client, table, key) for key in keys) if record is not None]
    return sorted(found, key=lambda r: str(r.get("received_at", "")), reverse=True)


def recent(
    client: Any,
    table: str,
    *,
    since: str,
    before: tuple[str, str] | None = None,
    statuses: Iterable[str] = (),
    sources: Iterable[str] = (),
    limit: int = 20,
    progress: Callable[[int], None] | None = None,
) -> Page:
    """Records received at or after ``since`` (ISO time), filtered, newest first (by received_at, then key).
    ``before`` is where the previous page ended: (received_at, pk), pk "" for "before this time"."""
    names = {f"#f{i}": name for i, name in enumerate(RECENT_FIELDS)}
    placeholder_of = {name: f"#f{i}" for i, name in enumerate(RECENT_FIELDS)}
    received_at = placeholder_of["received_at"]
    values: dict[str, Any] = {":since": {"S": since}}
    conditions = [f"{received_at} >= :since"]
    if before:
        values[":before"] = {"S": before[0]}
        condition = f"{received_at} < :before"
        if before[1]:
            values[":before_pk"] = {"S": before[1]}
            condition = f"({condition} OR ({received_at} = :before AND {placeholder_of['pk']} < :before_pk))"
        conditions.append(condition)
    for field, wanted in ((placeholder_of["status"], list(statuses)), (placeholder_of["source"], list(sources))):
        if wanted:
            placeholders = []
            for value in wanted:
                placeholder = f":v{len(values)}"
                values[placeholder] = {"S": value}
                placeholders.append(placeholder)
            conditions.append(f"{field} IN ({', '.join(placeholders)})")
    pages = client.get_paginator("scan").paginate(
        TableName=table,
        ProjectionExpression=", ".join(names),
        FilterExpression=" AND ".join(conditions),
        ExpressionAttributeNames=names,
        ExpressionAttributeValues=values,
    )
    matched: list[dict[str, Any]] = []
    scanned = 0
    for page in pages:
        scanned += int(page.get("ScannedCount", 0))
        matched.extend(_from_item(item) for item in page.get("Items", []))
        if progress is not None:
            progress(scanned)
    matched.sort(key=_newest_first, reverse=True)
    return Page(matched[:limit], len(matched), scanned)


def cursor_of(record: dict[str, Any]) -> str:
    """Where a page ends, for the next page's ``--before``: ``received_at|pk``."""
    return f"{record.get('received_at', '')}|{record.get('pk', '')}"


def parse_cursor(text: str) -> tuple[str, str] | None:
    """A ``received_at|pk`` cursor, or None when ``text`` is not one."""
    moment, separator, pk = text.partition("|")
    return (moment, pk) if separator and moment and pk else None


def _newest_first(record: dict[str, Any]) -> tuple[str, str]:
    return str(record.get("received_at", "")), str(record.get("pk", ""))


def _keys_of_click(client: Any, table: str, click_id: str) -> list[str]:
    pages = client.get_paginator("query").paginate(
        TableName=table,
        IndexName=CLICK_ID_INDEX,
        KeyConditionExpression="#click_id = :click_id",
        ExpressionAttributeNames={"#click_id": "click_id"},
        ExpressionAttributeValues={":click_id": {"S": click_id}},
        ScanIndexForward=False,
    )
    return [item["pk"]["S"] for page in pages for item in page.get("Items", [])]


def _get(client: Any, table: str, key: str) -> dict[str, Any] | None:
    item = client.get_item(TableName=table, Key={"pk": {"S": key}}, ConsistentRead=True).get("Item")
    return _from_item(item) if item else None


def _from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {name: _deserializer.deserialize(value) for name, value in item.items()}


_DURATION = re.compile(r"^(\d+)\s*([smhdw])$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(text: str, now: float) -> float | None:
    """``30m``, ``24h``, ``7d``, ``2w`` before ``now``, or an ISO date/time (UTC unless it says otherwise),
    as epoch seconds; None when it is neither."""
    from datetime import UTC, datetime

    match = _DURATION.match(text.strip().lower())
    if match:
        return now - int(match.group(1)) * _SECONDS[match.group(2)]
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
