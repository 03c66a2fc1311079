"""Where the scheduled reconciliation keeps its place: one item per tenant and platform in the relay's table,
``reconcile#<scope>`` (``reconcile#stripe``, ``reconcile#acme/stripe``), holding

- the **watermark**: the end of the last window reconciled to its end, where the next window starts (less the
  overlap);
- the **window in progress** and its **cursor** (the platform's page cursor after the last page finished), so a
  run that ran out of Lambda time, or met an error, is resumed where it stopped, with no gap and no page
  listed twice;
- a **lease** (owner and expiry): taken by one conditional write, so two runs never reconcile one platform at
  once (a schedule firing while the last run is still going). A run that
  crashed holds its lease only until it expires, the function's timeout; the next run then resumes its window.

Every write after the lease's is conditional on still holding it, so a run that lost its lease (it outlived
its expiry) cannot move the watermark under the run that took over. The item has no ``status``, so no read of
conversions (replay, status, the due index) ever lists it."""

from __future__ import annotations

from typing import Any, NamedTuple

from botocore.exceptions import BotoCoreError, ClientError

from postback_relay.aws.errors import describe, error_code
from postback_relay.aws.wire import from_item, to_wire
from postback_relay.core.tenant import scope

STATE_PREFIX = "reconcile#"


class StateUnavailable(Exception):
    """The table could not be read or written: the run stops, and the next one starts from the saved place."""


class Place(NamedTuple):
    """What a run starts from: the watermark (None before the first run) and, when a window was left
    unfinished, that window (since, until) and the cursor to resume it at."""

    watermark: float | None
    window: tuple[float, float] | None
    cursor: str | None


def state_key(tenant: str, source: str) -> str:
    """The state item's key for ``tenant``'s ``source``."""
    return f"{STATE_PREFIX}{scope(tenant, source)}"


class ReconcileStates:
    """Leases, cursors and watermarks of the scheduled reconciliation."""

    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def lease(self, key: str, owner: str, now: float, seconds: float) -> Place | None:
        """Take the lease on ``key`` until ``now + seconds`` and return the saved place; None when another
        run holds an unexpired lease (this run then leaves the platform alone)."""
        values = {":owner": owner, ":until": now + seconds, ":now": now, ":kind": "reconcile_state"}
        try:
            response = self._client.update_item(
                TableName=self._table,
                Key={"pk": {"S": key}},
                UpdateExpression="SET lease_owner = :owner, lease_until = :until, #kind = :kind",
                ExpressionAttributeNames={"#kind": "kind"},
                ConditionExpression="attribute_not_exists(lease_until) OR lease_until < :now",
                ExpressionAttributeValues={name: to_wire(value) for name, value in values.items()},
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return None
            raise StateUnavailable(f"cannot take the lease on {key}: {describe(exc)}") from None
        except BotoCoreError as exc:
            raise StateUnavailable(f"cannot take the lease on {key}: {describe(exc)}") from None
        item = from_item(response["Attributes"])
        window = None
        if "window_since" in item and "window_until" in item:
            window = (float(item["window_since"]), float(item["window_until"]))
        watermark = float(item["watermark"]) if "watermark" in item else None
        return Place(watermark, window, item.get("cursor"))

    def save(self, key: str, owner: str, window: tuple[float, float], cursor: str | None) -> None:
        """Keep ``window`` and the ``cursor`` that resumes it (after each page, and when a run stops early)."""
        names = "SET window_since = :since, window_until = :until"
        values: dict[str, Any] = {":since": window[0], ":until": window[1]}
        if cursor is None:
            expression = f"{names} REMOVE #cursor"
        else:
            expression, values[":cursor"] = f"{names}, #cursor = :cursor", cursor
        self._write(key, owner, expression, values, {"#cursor": "cursor"})

    def advance(self, key: str, owner: str, watermark: float, summary: dict[str, Any]) -> None:
        """The window is reconciled to its end: move the watermark there, forget the window, keep the run's
        summary (what `postback-relay status` and an operator read) and give the lease up."""
        expression = (
            "SET watermark = :watermark, last_run = :summary "
            "REMOVE window_since, window_until, #cursor, lease_owner, lease_until"
        )
        self._write(key, owner, expression, {":watermark": watermark, ":summary": summary}, {"#cursor": "cursor"})

    def release(self, key: str, owner: str, summary: dict[str, Any]) -> None:
        """Give the lease up and keep the window and cursor saved (the next run resumes them)."""
        expression = "SET last_run = :summary REMOVE lease_owner, lease_until"
        self._write(key, owner, expression, {":summary": summary}, {})

    def _write(self, key: str, owner: str, expression: str, values: dict[str, Any], names: dict[str, str]) -> None:
        """One update, made only while ``owner`` holds the lease; StateUnavailable when it does not (any
        more) or the table cannot be written."""
        request: dict[str, Any] = {
            "TableName": self._table,
            "Key": {"pk": {"S": key}},
            "UpdateExpression": expression,
            "ConditionExpression": "lease_owner = :owner",
            "ExpressionAttributeValues": {n: to_wire(v) for n, v in {**values, ":owner": owner}.items()},
        }
        if names:
            request["ExpressionAttributeNames"] = names
        try:
            self._client.update_item(**request)
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                raise StateUnavailable(f"the lease on {key} was lost (the run outlived it)") from None
            raise StateUnavailable(f"cannot write {key}: {describe(exc)}") from None
        except BotoCoreError as exc:
            raise StateUnavailable(f"cannot write {key}: {describe(exc)}") from None

    def get(self, key: str) -> dict[str, Any] | None:
        """The state item as stored (operators and tests), by the operators' read (`reads.get`)."""
        from postback_relay.aws import reads

        try:
            return reads.get(self._client, self._table, key)
        except (ClientError, BotoCoreError) as exc:
            raise StateUnavailable(f"cannot read {key}: {describe(exc)}") from None
