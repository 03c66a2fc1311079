"""Tenants: several shops and several TrafficStars accounts in one deployment (README "Tenants").

A tenant is a name (a slug), the sources it sells through, its own settings (the per-tenant subset of the
settings table: click-id key, value policy, currency, FX rates, goals, URL form, price) and its own secret
(its TrafficStars key and its platforms' signing secrets). The deployment's own configuration, its stack
parameters and its secret, is the tenant ``default``.

Isolation rests on one rule: a named tenant's records are keyed under its name. The default tenant's keys
are the ones the relay always wrote (``stripe#pi_…``), so upgrading changes no record and no lead code; tenant
``acme``'s are ``acme/stripe#pi_…``. Every key derived from a record key (aliases, a subscription's memory,
the lead code, queue messages) therefore carries the tenant too, and two tenants' order 1234 never meet.
Pure: no AWS here (aws/tenants.py stores configs, relay/tenants.py serves them)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

DEFAULT_TENANT = "default"
# A tenant's name: what its URLs carry and what its records are keyed under. Lower-case letters, digits and
# hyphens, 1-32 characters: safe in a path, a secret name, a log field and a metric dimension as it is.
SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
SCOPE_SEPARATOR = "/"  # between a tenant and a source in a record key: never in a slug nor in a source name

# How a shared route finds the tenant of an event it verified with a platform-wide secret.
LookupKind = str
STRIPE_ACCOUNT: LookupKind = "stripe_account"  # a Stripe Connect event's `account`
SHOPIFY_SHOP: LookupKind = "shopify_shop"  # a Shopify app's X-Shopify-Shop-Domain


def is_slug(name: object) -> bool:
    """Whether ``name`` can name a tenant."""
    return isinstance(name, str) and SLUG.fullmatch(name) is not None


def scope(tenant: str, source: str) -> str:
    """The record-key prefix of a tenant's source: the source itself for the default tenant."""
    return source if tenant == DEFAULT_TENANT else f"{tenant}{SCOPE_SEPARATOR}{source}"


def tenant_of(key: str) -> str:
    """The tenant of a record key (``acme/stripe#pi_1`` → ``acme``, ``stripe#pi_1`` → ``default``)."""
    prefix = key.partition("#")[0]
    tenant, separator, _ = prefix.partition(SCOPE_SEPARATOR)
    return tenant if separator and tenant else DEFAULT_TENANT


def source_of(key: str) -> str:
    """The platform of a record key (``acme/stripe#pi_1`` → ``stripe``); empty when the key names none."""
    prefix, separator, _ = key.partition("#")
    return prefix.rpartition(SCOPE_SEPARATOR)[2] if separator else ""


@dataclass(frozen=True)
class TenantConfig:
    """A tenant's non-secret configuration, as stored in the table and validated when written.

    ``settings`` holds environment-variable names of the settings table (only those marked per-tenant) and
    their values as text, read by the same readers as the stack's; what a tenant leaves unset takes the
    table's default, never the default tenant's value (one client's currency must not leak into another's)."""

    name: str
    sources: frozenset[str]
    settings: Mapping[str, str] = field(default_factory=dict)
    enabled: bool = True  # False: removed; its traffic is refused, its waiting conversions still finish
    stripe_accounts: tuple[str, ...] = ()  # connected accounts whose Connect events are this tenant's
    shopify_shops: tuple[str, ...] = ()  # shop domains whose app webhooks are this tenant's
    updated_at: str = ""

    def lookups(self) -> tuple[tuple[LookupKind, str], ...]:
        """The (kind, value) pairs a shared route finds this tenant by."""
        return tuple((STRIPE_ACCOUNT, a) for a in self.stripe_accounts) + tuple(
            (SHOPIFY_SHOP, s.lower()) for s in self.shopify_shops
        )
