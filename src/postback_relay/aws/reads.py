"""Reading conversion records for operators: one by key or purchase id, every one of a click id (through the
sparse `click_id` index), the recent ones (a filtered Scan, sorted here), and those a replay selects (the
store's `get` and `select` are these, with its own error). The relay's own reads (a batch of keys, the due
index) stay in the store, next to the writes they serve.

A Scan reads the whole table whatever the filters: one read request unit per 8 KB of items read
(eventually consistent), so a table of 100,000 records of ~2 KB costs ~25,000 RRU per `recent`, a fraction
of a cent on demand. Fine for an operator's command; nothing in the relay's own path scans."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from postback_relay.aws.wire import from_item, to_wire
from postback_relay.core.expression import Expression
from postback_relay.core.record import Status
from postback_relay.core.tenant import DEFAULT_TENANT

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
    "tenant",
)


@dataclass(frozen=True)
class Page:
    """Recent records, newest first: the ``limit`` shown and how many matched in all."""

    records: list[dict[str, Any]]
    matched: int
    scanned: int


def find(
    client: Any, table: str, reference: str, sources: Iterable[str], click_ids: re.Pattern[str]
) -> list[dict[str, Any]]:
    """The records ``reference`` names, newest first: a click id (every conversion of that click; ``click_ids``
    is the network's rule), a record key (``stripe#pi_…``), or a purchase id (``pi_…``, tried under each source)."""
    reference = reference.strip()
    if click_ids.fullmatch(reference.lower()):
        keys = _keys_of_click(client, table, reference.lower())
    elif "#" in reference:
        keys = [reference]
    else:
        keys = [f"{source}#{reference}" for source in sources]
    found = [record for record in (get(client, table, key) for key in keys) if record is not None]
    return sorted(found, key=lambda r: str(r.get("received_at", "")), reverse=True)


def recent(
    client: Any,
    table: str,
    *,
    since: str,
    before: tuple[str, str] | None = None,
    statuses: Iterable[str] = (),
    sources: Iterable[str] = (),
    tenant: str | None = None,
    limit: int = 20,
    progress: Callable[[int], None] | None = None,
) -> Page:
    """Records received at or after ``since`` (ISO time), filtered, newest first (by received_at, then key).
    ``before`` is where the previous page ended: (received_at, pk), pk "" for "before this time". ``tenant``
    keeps one tenant's: a named tenant's records carry its name; the default tenant's carry none (as every
    record did before tenants existed)."""
    expression = Expression()
    projection = ", ".join(map(expression.name, RECENT_FIELDS))
    received_at = expression.name("received_at")
    conditions = [f"{received_at} >= {expression.value(since, 'since')}"]
    if before:
        moment = expression.value(before[0], "before")
        condition = f"{received_at} < {moment}"
        if before[1]:
            pk = f"{expression.name('pk')} < {expression.value(before[1], 'before_pk')}"
            condition = f"({condition} OR ({received_at} = {moment} AND {pk}))"
        conditions.append(condition)
    for field, wanted in (("status", list(statuses)), ("source", list(sources))):
        if wanted:
            conditions.append(expression.one_of(field, wanted))
    if tenant == DEFAULT_TENANT:
        conditions.append(f"attribute_not_exists({expression.name('tenant')})")
    elif tenant is not None:
        conditions.append(f"{expression.name('tenant')} = {expression.value(tenant, 'tenant')}")
    pages = _scan(client, table, expression, conditions, ProjectionExpression=projection)
    matched: list[dict[str, Any]] = []
    scanned = 0
    for page in pages:
        scanned += int(page.get("ScannedCount", 0))
        matched.extend(map(from_item, page.get("Items", [])))
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


def get(client: Any, table: str, pk: str) -> dict[str, Any] | None:
    """The item of ``pk``, read consistently; None when there is none."""
    item = client.get_item(TableName=table, Key={"pk": {"S": pk}}, ConsistentRead=True).get("Item")
    return from_item(item) if item else None


def select(
    client: Any, table: str, statuses: tuple[str, ...] = (), since: str | None = None, click_id: str | None = None
) -> Iterator[dict[str, Any]]:
    """Records matching every given filter (status, ``updated_at`` ≥ an ISO time, click id), by a consistent
    Scan: what a replay re-sends."""
    expression = Expression()
    filters = [f"attribute_exists({expression.name('status')})"]  # conversions only, not aliases or subscriptions
    if statuses:
        filters.append(expression.one_of("status", statuses))
    if since:
        filters.append(f"{expression.name('updated_at')} >= {expression.value(since, 'since')}")
    if click_id:
        filters.append(f"{expression.name('click_id')} = {expression.value(click_id, 'click_id')}")
    for page in _scan(client, table, expression, filters, ConsistentRead=True):
        yield from map(from_item, page.get("Items", []))


def _scan(client: Any, table: str, expression: Expression, filters: list[str], **options: Any) -> Iterable[Any]:
    """The pages of a Scan of ``table`` that keeps the items passing every one of ``filters``."""
    return client.get_paginator("scan").paginate(  # type: ignore[no-any-return]
        TableName=table, FilterExpression=" AND ".join(filters), **expression.placeholders(to_wire), **options
    )


def _keys_of_click(client: Any, table: str, click_id: str) -> list[str]:
    key = Expression()
    pages = client.get_paginator("query").paginate(
        TableName=table,
        IndexName=CLICK_ID_INDEX,
        KeyConditionExpression=f"{key.name('click_id')} = {key.value(click_id, 'click_id')}",
        ScanIndexForward=False,
        **key.placeholders(to_wire),
    )
    return [item["pk"]["S"] for page in pages for item in page.get("Items", [])]


def _newest_first(record: dict[str, Any]) -> tuple[str, str]:
    return str(record.get("received_at", "")), str(record.get("pk", ""))


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
