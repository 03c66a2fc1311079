"""Environment → typed settings, validated once at start; an invalid setting fails with its name.

Each environment variable is declared once, in VARIABLES (the TrafficStars ones in networks/trafficstars.py):
its name, the field it fills, how it is read, its default and the template parameter that sets it. `from_env`
is that table applied; tests/unit/test_settings.py holds the template's parameters and the README's settings table
to it, so a setting cannot drift between the code, the stack and the documentation.

Hand-written rather than pydantic-settings: importing pydantic costs ~67 ms of cold start (bench/RESULTS.md)."""

from __future__ import annotations

import ipaddress
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

from postback_relay.core.backoff import RetryPolicy
from postback_relay.core.conversion import DEFAULT_APPROVED_STATUSES, REVERSAL_STATUSES, ParseContext
from postback_relay.core.forwarding import Address, ForwardFailure, is_public
from postback_relay.core.lifecycle import LifecyclePolicy, UpgradePolicy
from postback_relay.core.money import ValuePolicy
from postback_relay.env import (
    SettingsError,
    Variable,
    choice,
    currency_reader,
    decimal,
    flag_reader,
    optional_reader,
    read_variables,
    seconds,
    text_reader,
    transport_allowed,
    whole,
)
from postback_relay.networks import trafficstars
from postback_relay.networks.trafficstars import TrafficStarsSettings
from postback_relay.platforms import BILLERS, ROUTED
from postback_relay.platforms.checks import RequestSource

__all__ = ["ALL_VARIABLES", "TENANT_VARIABLES", "VARIABLES", "Settings", "SettingsError"]

STATUS_WORD = re.compile(r"[!-~]{1,50}")  # printable ASCII without spaces, as a status macro is filled in


def _fx_rates(environ: Mapping[str, str], name: str, default: str) -> dict[str, Decimal]:
    raw = environ.get(name, default).strip()
    if not raw:
        return {}
    try:
        table = json.loads(raw)
    except ValueError:
        raise SettingsError(f'{name} must be a JSON object such as {{"EUR": "1.08"}}') from None
    if not isinstance(table, dict):
        raise SettingsError(f'{name} must be a JSON object such as {{"EUR": "1.08"}}')
    rates: dict[str, Decimal] = {}
    for code, rate in table.items():
        try:
            value = Decimal(str(rate))
        except InvalidOperation:
            value = Decimal(0)
        if not isinstance(code, str) or len(code) != 3 or not code.isalpha() or not value.is_finite() or value <= 0:
            raise SettingsError(f"{name} entry {code!r}: {rate!r} must map a currency code to a positive rate")
        rates[code.upper()] = value
    return rates


def _approved_statuses(environ: Mapping[str, str], name: str, default: str) -> frozenset[str]:
    """Comma-separated status words, case-folded. Empty: only postbacks without a status count. A reversal word
    cannot be approved (it would count a refund as a sale, the mistake the allow-list exists to prevent)."""
    raw = environ.get(name, default)
    words = [word.strip().lower() for word in raw.split(",")]
    if words == [""]:
        return frozenset()
    for word in words:
        if not STATUS_WORD.fullmatch(word):
            raise SettingsError(f"{name} must be comma-separated status words (no spaces), got {raw!r}")
        if word in REVERSAL_STATUSES:
            raise SettingsError(f"{name} must not list {word!r}: it reverses a conversion ({REVERSAL_STATUSES[word]})")
    return frozenset(words)


Network = ipaddress.IPv4Network | ipaddress.IPv6Network
ANY_ADDRESS = "any"  # an allowlist turned off explicitly (README "Billers")


def _allowlist(environ: Mapping[str, str], name: str, default: str) -> tuple[Network, ...] | None:
    """Comma-separated addresses and CIDR ranges; `any` turns the allowlist off (None), empty allows none."""
    raw = environ.get(name, default).strip()
    if raw.lower() == ANY_ADDRESS:
        return None
    networks: list[Network] = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise SettingsError(
                f"{name} must be comma-separated addresses or CIDR ranges, or any; got {item!r}"
            ) from None
    return tuple(networks)


def _expected_text(environ: Mapping[str, str], name: str, default: str) -> str:
    """A platform's expected success text: one printable line (it is the whole body of the answer)."""
    value = environ.get(name, default).strip() or default
    if not value.isprintable() or len(value) > 100:
        raise SettingsError(f"{name} must be one line of at most 100 printable characters")
    return value


def _biller_variables() -> tuple[Variable, ...]:
    """Each biller's allowlist (`<PLATFORM>_ALLOWED_IPS`, its published ranges by default)."""
    return tuple(
        Variable(
            f"{source.name.upper()}_ALLOWED_IPS",
            f"allowed_ips.{source.name}",
            _allowlist,
            ",".join(source.published_ips),
            f"{source.name.capitalize()}AllowedIps",
            per_tenant=True,
        )
        for source in BILLERS.values()
    )


def _as_given(environ: Mapping[str, str], name: str, default: str) -> str:
    """A URL as set: from_env and for_tenant check it with checked_forward_url, which needs LOCAL_MODE as well."""
    return environ.get(name, default)


MAX_FORWARD_TIMEOUT_SECONDS = 8.0  # the webhook function's timeout is 10 s; the forward runs beside the processing


def _forward_timeout(environ: Mapping[str, str], name: str, default: str) -> float:
    timeout = float(seconds(0.5)(environ, name, default))
    if timeout > MAX_FORWARD_TIMEOUT_SECONDS:
        raise SettingsError(f"{name} must be at most {MAX_FORWARD_TIMEOUT_SECONDS:g} (the function's timeout is 10 s)")
    return timeout


def _forward_variables() -> tuple[Variable, ...]:
    """Each routed source's forward target (`<PLATFORM>_FORWARD_URL`, README "Forward mode"), unset by default."""
    return tuple(
        Variable(
            forward_variable(route),
            f"forward_urls.{route}",
            _as_given,
            "",
            "".join(part.capitalize() for part in route.split("-")) + "ForwardUrl",
            per_tenant=True,
        )
        for route in ROUTED
    )


def forward_variable(route: str) -> str:
    """The name of a route's forward-target setting: VEROTEL_FORWARD_URL, PADDLE_SANDBOX_FORWARD_URL."""
    return f"{route.upper().replace('-', '_')}_FORWARD_URL"


VARIABLES: tuple[Variable, ...] = (
    Variable("SECRET_ID", "secret_id", text_reader, "", "SecretArn"),
    Variable("TABLE_NAME", "table_name", text_reader, ""),
    Variable("LOCAL_MODE", "local_mode", flag_reader, "false"),
    Variable("TENANT_SECRET_PREFIX", "tenant_secret_prefix", optional_reader, ""),
    Variable(
        "CLICK_ID_METADATA_KEY", "click_id_metadata_key", text_reader, "click_id", "ClickIdMetadataKey", per_tenant=True
    ),
    Variable("ACCOUNT_CURRENCY", "account_currency", currency_reader, "USD", "AccountCurrency", per_tenant=True),
    Variable("FX_RATES", "fx_rates", _fx_rates, "", "FxRates", per_tenant=True),
    Variable(
        "VALUE_POLICY",
        "value_policy.kind",
        choice("amount", "fixed", "percent", "none"),
        "amount",
        "ValuePolicy",
        per_tenant=True,
    ),
    Variable("VALUE_FIXED", "value_policy.fixed", decimal(0), "0", "ValueFixed", per_tenant=True),
    Variable("VALUE_PERCENT", "value_policy.percent", decimal(0), "100", "ValuePercent", per_tenant=True),
    Variable(
        "VALUE_OUT_OF_RANGE",
        "value_policy.out_of_range",
        choice("clamp", "omit"),
        "clamp",
        "ValueOutOfRange",
        per_tenant=True,
    ),
    Variable(
        "UPGRADES_COUNT_AS",
        "upgrades_count_as",
        choice("nothing", "renewal"),
        "nothing",
        "UpgradesCountAs",
        per_tenant=True,
    ),
    Variable("FORWARD_TEST_EVENTS", "forward_test_events", flag_reader, "false", "ForwardTestEvents", per_tenant=True),
    Variable("RETENTION_DAYS", "retention_days", whole(1), "90", "RetentionDays"),
    Variable(
        "POSTBACK_APPROVED_STATUSES",
        "postback_approved_statuses",
        _approved_statuses,
        ",".join(DEFAULT_APPROVED_STATUSES),
        per_tenant=True,
    ),
    Variable("RETRY_RATE_PER_SECOND", "retry_rate_per_second", seconds(0.1), "10", per_tenant=True),
    Variable("SECRET_MAX_AGE_SECONDS", "secret_max_age_seconds", whole(1), "300"),
    Variable("SECRET_REFRESH_MIN_INTERVAL_SECONDS", "secret_refresh_min_interval_seconds", seconds(0), "5"),
    Variable("SEND_LEASE_SECONDS", "send_lease_seconds", whole(5), "30"),
    Variable("SIGNATURE_TOLERANCE_SECONDS", "signature_tolerance_seconds", whole(1), "300"),
    Variable("MAX_BODY_BYTES", "max_body_bytes", whole(1024), "262144"),
    Variable("RETRY_QUEUE_URL", "retry_queue_url", optional_reader, ""),
    Variable("DEAD_LETTER_QUEUE_URL", "dead_letter_queue_url", optional_reader, ""),
    Variable("RETRY_WINDOW_SECONDS", "retry_policy.window_seconds", seconds(1), "259200", "RetryWindowSeconds"),
    Variable("RETRY_BASE_DELAY_SECONDS", "retry_policy.base_delay_seconds", seconds(0.01), "30"),
    Variable("RETRY_MAX_DELAY_SECONDS", "retry_policy.max_delay_seconds", seconds(0.01), "3600"),
    Variable("SWEEP_GRACE_SECONDS", "sweep_grace_seconds", whole(0), "60"),
    *_biller_variables(),
    Variable(
        "SEGPAY_EXPECTED_RESPONSE",
        "segpay_expected_response",
        _expected_text,
        "OK",
        "SegpayExpectedResponse",
        per_tenant=True,
    ),
    Variable("VEROTEL_SHOP_ID", "verotel_shop_id", optional_reader, "", "VerotelShopId", per_tenant=True),
    *_forward_variables(),
    Variable("STRIPE_API_BASE", "stripe_api_base", _as_given, "https://api.stripe.com"),
    Variable("SHOPIFY_SHOP_URL", "shopify_shop_url", _as_given, "", "ShopifyShopUrl", per_tenant=True),
    Variable("WOOCOMMERCE_STORE_URL", "woocommerce_store_url", _as_given, "", "WoocommerceStoreUrl", per_tenant=True),
    Variable("PADDLE_API_BASE", "paddle_api_base", _as_given, "https://api.paddle.com"),
    Variable("LEMONSQUEEZY_API_BASE", "lemonsqueezy_api_base", _as_given, "https://api.lemonsqueezy.com"),
    Variable("RECONCILE_SETTLE_SECONDS", "reconcile_settle_seconds", whole(0), "900"),
    Variable("RECONCILE_OVERLAP_SECONDS", "reconcile_overlap_seconds", whole(0), "3600"),
    Variable("RECONCILE_MAX_REQUESTS", "reconcile_max_requests", whole(1), "500"),
    Variable("FORWARD_TIMEOUT_SECONDS", "forward_timeout_seconds", _forward_timeout, "5", "ForwardTimeoutSeconds"),
    Variable(
        "FORWARD_ON_FAILURE",
        "forward_on_failure",
        choice("pass", "answer"),
        "pass",
        "ForwardOnFailure",
        per_tenant=True,
    ),
)
# Every variable the relay reads, its own and its network's: what the template and the README are checked against.
ALL_VARIABLES: tuple[Variable, ...] = VARIABLES + trafficstars.VARIABLES
# What a tenant's configuration may set (its `settings`), by name.
TENANT_VARIABLES: frozenset[str] = frozenset(v.name for v in ALL_VARIABLES if v.per_tenant)


@dataclass(frozen=True)
class Settings:
    """Every setting of the relay (the environment variable of each: VARIABLES). The defaults here are the
    table's, parsed (tests/unit/test_settings.py holds the two equal)."""

    secret_id: str
    table_name: str
    tenant_secret_prefix: str | None = None  # tenant T's secret is this + T (unset: no tenants besides default)
    trafficstars: TrafficStarsSettings = field(default_factory=TrafficStarsSettings)
    local_mode: bool = False  # allows an http:// TRAFFICSTARS_URL on loopback (make run, tests)
    click_id_metadata_key: str = "click_id"
    account_currency: str = "USD"  # the currency TrafficStars reports values in
    fx_rates: Mapping[str, Decimal] = field(default_factory=dict)  # {"EUR": Decimal("1.08")}: account units per unit
    value_policy: ValuePolicy = field(default_factory=ValuePolicy)
    forward_test_events: bool = False  # also forward test-mode purchases (Stripe livemode=false)
    secret_max_age_seconds: int = 300  # how long the fetched secret is cached
    secret_refresh_min_interval_seconds: float = 5.0  # bound on forced refetches
    send_lease_seconds: int = 30  # how long a claim to send a conversion holds
    signature_tolerance_seconds: int = 300  # allowed clock skew of signed timestamps
    retention_days: int = 90  # records expire (DynamoDB TTL) this long after their last change
    max_body_bytes: int = 262_144  # larger bodies are refused with 413
    retry_queue_url: str | None = None  # SQS queue of the retry worker (unset: senders retry)
    dead_letter_queue_url: str | None = None  # where exhausted conversions are parked
    retry_policy: RetryPolicy = field(default_factory=RetryPolicy)
    sweep_grace_seconds: int = 60  # how late a due conversion may be before the sweep acts
    retry_rate_per_second: float = 10.0  # the retry worker's sends per second for one tenant, per instance
    upgrades_count_as: UpgradePolicy = "nothing"  # what an upgrade's charge is sent as (README lifecycle table)
    # tracker `status` values that count (lower-case); an empty status always counts
    postback_approved_statuses: frozenset[str] = field(default_factory=lambda: frozenset(DEFAULT_APPROVED_STATUSES))
    # each biller's source-IP allowlist (<PLATFORM>_ALLOWED_IPS): None when turned off (`any`)
    allowed_ips: Mapping[str, tuple[Network, ...] | None] = field(default_factory=lambda: _default_allowlists())
    segpay_expected_response: str = "OK"  # the Expected Response text configured for the Segpay postback
    verotel_shop_id: str | None = None  # added to the signed parameters when a Verotel postback lacks shopID
    # each routed source's merchant endpoint in forward mode (<PLATFORM>_FORWARD_URL): None when not forwarded
    forward_urls: Mapping[str, str | None] = field(default_factory=lambda: dict.fromkeys(ROUTED))
    forward_timeout_seconds: float = 5.0  # how long the merchant's endpoint may take to answer a forward
    forward_on_failure: ForwardFailure = "pass"  # merchant down: pass its failure on, or answer the relay's answer
    stripe_api_base: str = "https://api.stripe.com"  # where reconciliation lists Stripe's events
    shopify_shop_url: str | None = None  # the shop reconciliation lists orders from (https://<shop>.myshopify.com)
    woocommerce_store_url: str | None = None  # the store reconciliation lists orders from (https://shop.example.com)
    paddle_api_base: str = "https://api.paddle.com"  # where reconciliation lists Paddle's events
    lemonsqueezy_api_base: str = "https://api.lemonsqueezy.com"  # where reconciliation lists Lemon Squeezy's orders
    reconcile_settle_seconds: int = 900  # a purchase younger than this is left to its webhook
    reconcile_overlap_seconds: int = 3600  # a scheduled run starts this long before where the last one ended
    reconcile_max_requests: int = 500  # a run's budget of API requests per platform

    @property
    def parse_context(self) -> ParseContext:
        """What the platforms' parsers need of these settings."""
        return ParseContext(
            trafficstars.CLICK_ID_PATTERN,
            self.click_id_metadata_key,
            self.account_currency,
            self.postback_approved_statuses,
            self.verotel_shop_id,
        )

    def success_text(self, source: RequestSource) -> str | None:
        """The body ``source``'s platform expects on success: Segpay's configured Expected Response, or the
        platform's fixed word (Verotel's `OK`); None where the JSON answer does."""
        if source.name == "segpay":
            return self.segpay_expected_response
        return source.success_text

    @property
    def lifecycle(self) -> LifecyclePolicy:
        """What the lifecycle table (core/lifecycle.py) needs of these settings."""
        return LifecyclePolicy("lead" in self.trafficstars.options.goal_ids, self.upgrades_count_as)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and validate every setting from ``environ`` (default: the process environment)."""
        environ = os.environ if environ is None else environ
        values = read_variables(VARIABLES, environ)
        values["retry_policy"] = RetryPolicy(**values["retry_policy"])
        values["value_policy"] = _value_policy(values["value_policy"], environ)
        values["trafficstars"] = TrafficStarsSettings.from_env(environ, values["local_mode"])
        values["forward_urls"] = _forward_urls(values["forward_urls"], values["local_mode"])
        for name, variable in API_BASES.items():
            values[name] = _api_base(values[name], variable, values["local_mode"])
        for name, variable in SHOP_URLS.items():
            values[name] = _shop_url(values[name], variable, values["local_mode"])
        return cls(**values)

    def for_tenant(self, overrides: Mapping[str, str]) -> Settings:
        """A tenant's settings: these (the deployment's), with every per-tenant setting read from
        ``overrides`` by the same readers, and the table's default where the tenant sets none, never this
        deployment's own value (one client's currency or goals must not become another's). SettingsError
        names a setting a tenant may not set or a value that is not valid; the CLI calls this before it
        writes a tenant, the relay when it serves one."""
        refused = sorted(set(overrides) - TENANT_VARIABLES)
        if refused:
            raise SettingsError(
                f"{', '.join(refused)}: not a tenant setting (a tenant may set {', '.join(sorted(TENANT_VARIABLES))})"
            )
        own = tuple(variable for variable in VARIABLES if variable.per_tenant)
        values = read_variables(own, overrides)
        values["value_policy"] = _value_policy(values["value_policy"], overrides)
        values["forward_urls"] = _forward_urls(values["forward_urls"], self.local_mode)
        for name, variable in SHOP_URLS.items():
            values[name] = _shop_url(values[name], variable, self.local_mode)
        network = TrafficStarsSettings.from_env(overrides, self.local_mode)
        values["trafficstars"] = replace(
            network,
            connect_timeout_seconds=self.trafficstars.connect_timeout_seconds,
            read_timeout_seconds=self.trafficstars.read_timeout_seconds,
        )
        return replace(self, **values)


def _api_base(raw: str, name: str, local_mode: bool) -> str:
    """A platform API's base URL, https (http:// only on loopback with LOCAL_MODE=true), without a trailing slash."""
    url = raw.strip().rstrip("/")
    parts = urlsplit(url)
    if not parts.hostname or parts.query or parts.fragment or "@" in parts.netloc:
        raise SettingsError(f"{name} must be a base URL such as https://api.example.com")
    if transport_allowed(parts.scheme, parts.hostname, local_mode):
        return url
    raise SettingsError(f"{name} must use https (http:// only for a loopback host with LOCAL_MODE=true)")


def _shop_url(raw: str, name: str, local_mode: bool) -> str | None:
    """A shop's address (SHOPIFY_SHOP_URL, WOOCOMMERCE_STORE_URL): unset, or its base URL (a path for a store in
    a subfolder is kept)."""
    return _api_base(raw, name, local_mode) if raw.strip() else None


# The platform API base URLs reconciliation reads (README "Reconciliation"), each a deployment's setting with
# the platform's public API as default, and the shops' addresses, each a tenant's: field → variable.
API_BASES = {
    "stripe_api_base": "STRIPE_API_BASE",
    "paddle_api_base": "PADDLE_API_BASE",
    "lemonsqueezy_api_base": "LEMONSQUEEZY_API_BASE",
}
SHOP_URLS = {"shopify_shop_url": "SHOPIFY_SHOP_URL", "woocommerce_store_url": "WOOCOMMERCE_STORE_URL"}
RECONCILE_ADDRESSES = (*API_BASES.values(), *SHOP_URLS.values())  # what `postback-relay` passes through


def _forward_urls(raw: Mapping[str, str], local_mode: bool) -> dict[str, str | None]:
    """Each route's forward target, checked now that LOCAL_MODE is known."""
    return {route: _checked_forward_url(url, forward_variable(route), local_mode) for route, url in raw.items()}


def _checked_forward_url(raw: str, name: str, local_mode: bool) -> str | None:
    """A `<PLATFORM>_FORWARD_URL` as set, once it can be forwarded to: None when unset; https (an http:// URL only
    for a loopback host with LOCAL_MODE=true); no credentials or fragment; a literal address only when public
    (or in the local run). A host name is checked again, address by address, on every forward. Raises
    SettingsError naming the variable."""
    url = raw.strip()
    if not url:
        return None
    parts = urlsplit(url)
    if not parts.hostname or parts.fragment or "@" in parts.netloc:
        raise SettingsError(f"{name} must be a URL such as https://members.example.com/verotel.php (no user or #)")
    try:
        parts.port  # noqa: B018 - raises for a port that is not a number
    except ValueError:
        raise SettingsError(f"{name} has an invalid port: {url!r}") from None
    if parts.scheme not in ("https", "http"):
        raise SettingsError(f"{name} must use https, got {parts.scheme or 'no scheme'}")
    if not transport_allowed(parts.scheme, parts.hostname, local_mode):
        raise SettingsError(f"{name} must use https (http:// only for a loopback host with LOCAL_MODE=true)")
    literal = _literal_address(parts.hostname)
    if literal is not None and not local_mode and not is_public(literal):
        raise SettingsError(f"{name} points at {literal}, which is not a public address")
    return url


def _literal_address(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _default_allowlists() -> dict[str, tuple[Network, ...] | None]:
    """The allowlists when nothing is set: each biller's published ranges."""
    return {source.name: _allowlist({}, "", ",".join(source.published_ips)) for source in BILLERS.values()}


def _value_policy(parts: dict[str, Any], environ: Mapping[str, str]) -> ValuePolicy:
    """The policy, once the number its kind needs is given explicitly (a default 0 payout is never meant)."""
    for kind, name in (("fixed", "VALUE_FIXED"), ("percent", "VALUE_PERCENT")):
        if parts["kind"] == kind and name not in environ:
            raise SettingsError(f"{name} is required when VALUE_POLICY is {kind}")
    return ValuePolicy(**parts)
