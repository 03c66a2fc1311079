"""Tenants' configurations in the relay's table, cached per container like the secret.

Why the table and not SSM Parameter Store or AppConfig: the relay already reads and writes it (no new
permission to a new service, no new resource in the stack); a tenant is one consistent GetItem of a few
hundred bytes (Parameter Store's standard tier shares 40 reads a second across the account; AppConfig makes
every tenant added a deployment, which is what tenants are meant to avoid); and the lookup items a shared
route needs (a Stripe Connect account, a Shopify shop → its tenant) sit beside them, written in the same
transaction (docs: reconcile-and-tenants.md, Part B.3).

Items: ``tenant#<name>`` holds a TenantConfig; ``tenant_lookup#<kind>#<value>`` names the tenant a shared
route's event belongs to. Neither has a status or a received_at, so no operator read of conversions lists them.

Reads are cached for the secret's max age (SECRET_MAX_AGE_SECONDS), so a change or a removal reaches a warm
container within it, as a rotated secret does; a tenant that is not found is not cached, so a tenant added is
served at once. When the table cannot be read, the last configuration read is used; with none,
TenantsUnavailable (503)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from postback_relay.aws.errors import describe
from postback_relay.aws.wire import from_item, to_wire
from postback_relay.core.tenant import LookupKind, TenantConfig, tenant_of

TENANT_PREFIX = "tenant#"
LOOKUP_PREFIX = "tenant_lookup#"


class TenantsUnavailable(Exception):
    """The table could not be read and nothing usable is cached: answered 503 so the sender retries."""


class TenantConflict(Exception):
    """A write would take a lookup (a Stripe account, a Shopify shop) another tenant holds, or the tenant
    changed since it was read."""


def tenant_key(name: str) -> str:
    return f"{TENANT_PREFIX}{name}"


def lookup_key(kind: LookupKind, value: str) -> str:
    return f"{LOOKUP_PREFIX}{kind}#{value}"


def to_item(config: TenantConfig) -> dict[str, Any]:
    """The stored item of a configuration (Python values)."""
    return {
        "pk": tenant_key(config.name),
        "kind": "tenant",
        "name": config.name,
        "sources": sorted(config.sources),
        "settings": dict(config.settings),
        "enabled": config.enabled,
        "stripe_accounts": list(config.stripe_accounts),
        "shopify_shops": list(config.shopify_shops),
        "updated_at": config.updated_at,
    }


def from_tenant_item(item: dict[str, Any]) -> TenantConfig:
    """The configuration of a deserialized item."""
    return TenantConfig(
        name=str(item["name"]),
        sources=frozenset(str(s) for s in item.get("sources") or ()),
        settings={str(k): str(v) for k, v in (item.get("settings") or {}).items()},
        enabled=bool(item.get("enabled", True)),
        stripe_accounts=tuple(str(a) for a in item.get("stripe_accounts") or ()),
        shopify_shops=tuple(str(s) for s in item.get("shopify_shops") or ()),
        updated_at=str(item.get("updated_at", "")),
    )


class TenantDirectory:
    """Reads (cached) and writes (the operator CLI) tenants' configurations and their lookups."""

    def __init__(
        self,
        client: Any,
        table: str,
        max_age_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._table = table
        self._max_age = max_age_seconds
        self._clock = clock
        self._cache: dict[str, tuple[float, TenantConfig]] = {}
        self._lock = threading.Lock()

    def get(self, name: str, force: bool = False) -> TenantConfig | None:
        """The tenant's configuration (enabled or not), None when there is none. From the cache while it is
        younger than the max age, unless ``force``."""
        cached = self._cache.get(name)
        if cached is not None and not force and self._clock() - cached[0] < self._max_age:
            return cached[1]
        try:
            item = self._get_item(tenant_key(name))
        except TenantsUnavailable:
            if cached is not None:
                return cached[1]  # the table is unreadable: the last configuration read still holds
            raise
        with self._lock:
            if item is None:
                self._cache.pop(name, None)
                return None
            config = from_tenant_item(item)
            self._cache[name] = (self._clock(), config)
            return config

    def find(self, kind: LookupKind, value: str) -> str | None:
        """The name of the tenant a shared route's event belongs to (its Stripe account, its shop)."""
        item = self._get_item(lookup_key(kind, value))
        return str(item["tenant"]) if item is not None and "tenant" in item else None

    def every(self) -> list[TenantConfig]:
        """Every tenant, by name (a scan: the operator's command, never the relay's path)."""
        found = [from_tenant_item(item) for item in self._scan(TENANT_PREFIX)]
        return sorted(found, key=lambda config: config.name)

    def save(self, config: TenantConfig, previous: TenantConfig | None) -> None:
        """Write ``config`` and its lookups in one transaction, dropping the lookups ``previous`` had and it
        has not. TenantConflict when a lookup belongs to another tenant, when the tenant exists although
        ``previous`` is None, or when it changed since ``previous`` was read."""
        key = tenant_key(config.name)
        if previous is None:
            condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(pk)"}
        else:
            condition = {
                "ConditionExpression": "updated_at = :read",
                "ExpressionAttributeValues": {":read": to_wire(previous.updated_at)},
            }
        actions: list[dict[str, Any]] = [
            {"Put": {"TableName": self._table, "Item": _wire(to_item(config)), **condition}}
        ]
        wanted = set(config.lookups())
        for kind, value in sorted(wanted):
            actions.append(
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": _wire({"pk": lookup_key(kind, value), "kind": "tenant_lookup", "tenant": config.name}),
                        "ConditionExpression": "attribute_not_exists(pk) OR tenant = :name",
                        "ExpressionAttributeValues": {":name": to_wire(config.name)},
                    }
                }
            )
        stale = set(previous.lookups()) - wanted if previous is not None else set()
        actions += [self._delete_lookup(kind, value, config.name) for kind, value in sorted(stale)]
        self._transact(actions, key)

    def delete(self, config: TenantConfig) -> None:
        """Remove the tenant's configuration and its lookups (its records stay, and expire as any do)."""
        actions = [{"Delete": {"TableName": self._table, "Key": {"pk": to_wire(tenant_key(config.name))}}}]
        actions += [self._delete_lookup(kind, value, config.name) for kind, value in config.lookups()]
        self._transact(actions, tenant_key(config.name))
        self._cache.pop(config.name, None)

    def _delete_lookup(self, kind: LookupKind, value: str, name: str) -> dict[str, Any]:
        return {
            "Delete": {
                "TableName": self._table,
                "Key": {"pk": to_wire(lookup_key(kind, value))},
                "ConditionExpression": "attribute_not_exists(pk) OR tenant = :name",
                "ExpressionAttributeValues": {":name": to_wire(name)},
            }
        }

    def _transact(self, actions: list[dict[str, Any]], key: str) -> None:
        try:
            self._client.transact_write_items(TransactItems=actions)
        except ClientError as exc:
            reasons = exc.response.get("CancellationReasons") or []
            if any(reason.get("Code") == "ConditionalCheckFailed" for reason in reasons):
                raise TenantConflict(_conflict(actions, reasons, key)) from None
            raise TenantsUnavailable(f"cannot write {key}: {describe(exc)}") from None
        except BotoCoreError as exc:
            raise TenantsUnavailable(f"cannot write {key}: {type(exc).__name__}") from None

    def _get_item(self, key: str) -> dict[str, Any] | None:
        try:
            response = self._client.get_item(TableName=self._table, Key={"pk": {"S": key}}, ConsistentRead=True)
        except (ClientError, BotoCoreError) as exc:
            detail = describe(exc) if isinstance(exc, ClientError) else type(exc).__name__
            raise TenantsUnavailable(f"cannot read {key}: {detail}") from None
        item = response.get("Item")
        return from_item(item) if item else None

    def _scan(self, prefix: str) -> Iterator[dict[str, Any]]:
        try:
            pages = self._client.get_paginator("scan").paginate(
                TableName=self._table,
                FilterExpression="begins_with(pk, :prefix)",
                ExpressionAttributeValues={":prefix": {"S": prefix}},
                ConsistentRead=True,
            )
            for page in pages:
                yield from (from_item(item) for item in page.get("Items", []))
        except (ClientError, BotoCoreError) as exc:
            detail = describe(exc) if isinstance(exc, ClientError) else type(exc).__name__
            raise TenantsUnavailable(f"cannot list tenants: {detail}") from None


def waiting(client: Any, table: str, name: str) -> list[str]:
    """The keys of tenant ``name``'s conversions still in flight or waiting to be sent: the sparse due index
    holds exactly those (a final record leaves it), so this reads the backlog, never the table. Before a
    tenant's secret is deleted, each of these still needs its TrafficStars key."""
    from postback_relay.aws.store import DUE_INDEX
    from postback_relay.core.record import DUE_SHARD

    request: dict[str, Any] = {
        "TableName": table,
        "IndexName": DUE_INDEX,
        "KeyConditionExpression": "due_shard = :shard",
        "ExpressionAttributeValues": {":shard": to_wire(DUE_SHARD)},
        "ProjectionExpression": "pk",
    }
    keys: list[str] = []
    try:
        for page in client.get_paginator("query").paginate(**request):
            keys += [item["pk"]["S"] for item in page.get("Items", []) if tenant_of(item["pk"]["S"]) == name]
    except (ClientError, BotoCoreError) as exc:
        detail = describe(exc) if isinstance(exc, ClientError) else type(exc).__name__
        raise TenantsUnavailable(f"cannot read the due index: {detail}") from None
    return sorted(keys)


def _wire(item: dict[str, Any]) -> dict[str, Any]:
    return {name: to_wire(value) for name, value in item.items()}


def _conflict(actions: list[dict[str, Any]], reasons: list[dict[str, Any]], key: str) -> str:
    """Which write was refused, in words."""
    for action, reason in zip(actions, reasons, strict=False):
        if reason.get("Code") != "ConditionalCheckFailed":
            continue
        body = action.get("Put") or action.get("Delete") or {}
        pk = (body.get("Item") or body.get("Key") or {}).get("pk", {}).get("S", "")
        if pk == key:
            return f"{key} exists already, or changed since it was read"
        if pk.startswith(LOOKUP_PREFIX):
            kind, _, value = pk[len(LOOKUP_PREFIX) :].partition("#")
            return f"{kind} {value} belongs to another tenant"
    return f"{key}: a condition failed"
