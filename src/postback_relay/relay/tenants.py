"""Which relay serves a request: the default tenant's, or a named tenant's, built on first use from its stored
configuration and kept while that configuration is unchanged, so a warm container pays nothing per request
for having many tenants, and a tenant added, changed or removed needs no deploy (README "Tenants").

A tenant that does not exist is refused before its secret is read (the slug is checked first, so a path no
tenant could have costs no read at all); a removed tenant's traffic is refused, while its waiting
conversions still finish with its own key."""

from __future__ import annotations

import threading
from collections.abc import Callable

from aws_lambda_powertools import Logger

from postback_relay.aws.tenants import TenantDirectory, TenantsUnavailable
from postback_relay.core.outcome import Outcome, SourceNotConfigured, Unavailable, UnknownTenant
from postback_relay.core.tenant import DEFAULT_TENANT, TenantConfig, is_slug, tenant_of
from postback_relay.env import SettingsError
from postback_relay.relay.orchestration import Relay

logger = Logger(child=True)

Build = Callable[[TenantConfig], Relay]


class Tenants:
    """The default tenant's relay, and every named tenant's, by name."""

    def __init__(self, default: Relay, directory: TenantDirectory | None, build: Build) -> None:
        self.default = default
        self._directory = directory  # None: the deployment has no tenant secret prefix, so no named tenants
        self._build = build
        self._relays: dict[str, tuple[TenantConfig, Relay]] = {}
        self._lock = threading.Lock()

    def serving(self, name: str, route: str) -> Relay:
        """The relay that serves ``route`` (a ROUTED name) for tenant ``name``: UnknownTenant (404) for a tenant
        that does not exist or was removed, SourceNotConfigured (404) for a source it does not sell
        through, Unavailable (503) when its configuration cannot be read."""
        if name == DEFAULT_TENANT:
            return self.default
        config = self._config(name)
        if config is None or not config.enabled:
            raise UnknownTenant(f"no tenant named {name!r}")
        if route not in config.sources:
            raise SourceNotConfigured(f"tenant {name!r} does not sell through {route}")
        return self._relay(config)

    def find(self, kind: str, key: str) -> Relay | None:
        """The relay of the enabled tenant that claims a shared route's account (or shop), None when none
        does. Not cached: a lookup is one consistent read, and only verified deliveries make it."""
        if self._directory is None:
            return None
        try:
            name = self._directory.find(kind, key)
        except TenantsUnavailable as exc:
            raise Unavailable(str(exc)) from None
        config = self._config(name) if name else None
        return self._relay(config) if config is not None and config.enabled else None

    def each(self) -> list[tuple[Relay, frozenset[str] | None]]:
        """Every enabled tenant's relay with the sources it sells through (None for the default tenant: all
        its configured ones), the default first: what the scheduled reconciliation walks. A tenant whose
        stored settings are no longer valid is left out (and logged, as when it is served); Unavailable when
        the directory cannot be read."""
        relays: list[tuple[Relay, frozenset[str] | None]] = [(self.default, None)]
        if self._directory is None:
            return relays
        try:
            configs = self._directory.every()
        except TenantsUnavailable as exc:
            raise Unavailable(str(exc)) from None
        for config in configs:
            if not config.enabled:
                continue
            try:
                relays.append((self._relay(config), config.sources))
            except Unavailable:
                continue
        return relays

    def retry(self, conversion_id: str, message_due_at: float | None = None) -> Outcome | None:
        """The retry worker's attempt at a conversion, by the relay of the tenant its key names: enabled or
        removed (its waiting conversions finish), or, when its configuration is gone, an attempt without a
        key that ends failed (Relay.retire), never one with another tenant's key."""
        name = tenant_of(conversion_id)
        if name == DEFAULT_TENANT:
            return self.default.retry(conversion_id, message_due_at)
        config = self._config(name)
        if config is None:
            return self.default.retire(conversion_id, message_due_at)
        return self._relay(config).retry(conversion_id, message_due_at)

    def _config(self, name: str) -> TenantConfig | None:
        if self._directory is None or not is_slug(name):
            return None
        try:
            return self._directory.get(name)
        except TenantsUnavailable as exc:
            raise Unavailable(str(exc)) from None

    def _relay(self, config: TenantConfig) -> Relay:
        built = self._relays.get(config.name)
        if built is not None and built[0] == config:
            return built[1]
        try:
            relay = self._build(config)
        except SettingsError as exc:  # stored before a release that reads a setting more strictly
            logger.error("tenant configuration not valid", extra={"tenant": config.name, "error": str(exc)})
            raise Unavailable(f"tenant {config.name!r} has a setting that is not valid: {exc}") from None
        with self._lock:
            self._relays[config.name] = (config, relay)
        return relay
