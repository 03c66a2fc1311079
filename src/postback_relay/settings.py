"""Environment → typed settings, validated once at start; an invalid setting fails with its name."""

from __future__ import annotations

import ipaddress
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Literal
from urllib.parse import urlsplit

from postback_relay.core.backoff import RetryPolicy
from postback_relay.core.conversion import GOAL_KINDS, REVERSAL_STATUSES
from postback_relay.core.money import MAX_VALUE, MIN_VALUE, RangeAction, ValuePolicy
from postback_relay.networks.trafficstars import PostbackOptions, PriceSource

DEFAULT_TRAFFICSTARS_URL = "https://tsyndicate.com/api/v1/cpa/action"
TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}
# Tracker postback statuses that count as a conversion (besides none at all): Keitaro's `sale` (payout confirmed)
# and `rebill` (upsell), RedTrack's `approved`, Binom's usual `approve`, Affise's system value `1` (Approved), and
# the words CPA networks use for a paid conversion. See sources/tracker.py for the sources and the other statuses.
DEFAULT_POSTBACK_APPROVED_STATUSES = "approved,approve,confirmed,sale,rebill,completed,paid,1"
UpgradePolicy = Literal["nothing", "renewal"]
STATUS_WORD = re.compile(r"[!-~]{1,50}")  # printable ASCII without spaces, as a status macro is filled in


class SettingsError(ValueError):
    """A setting is missing or invalid; the message names it and says what it accepts."""


@dataclass(frozen=True)
class Settings:
    """Every setting of the relay. Field docs name the environment variable."""

    secret_id: str  # SECRET_ID: name or ARN of the Secrets Manager secret (JSON)
    table_name: str  # TABLE_NAME: the DynamoDB conversions table
    trafficstars_url: str = DEFAULT_TRAFFICSTARS_URL  # TRAFFICSTARS_URL: base of /{click_id}?value=&lead_code=&key=
    # TRAFFICSTARS_URL_FORM (path|query), TRAFFICSTARS_GOAL_{PURCHASE,RENEWAL,LEAD}, TRAFFICSTARS_PRICE,
    # TRAFFICSTARS_ALLOW_DUPLICATES: the postback's URL form and, in the query form, goals, price, duplicates
    postback_options: PostbackOptions = field(default_factory=PostbackOptions)
    local_mode: bool = False  # LOCAL_MODE: allows an http:// TRAFFICSTARS_URL on loopback (make run, tests)
    click_id_metadata_key: str = "click_id"  # CLICK_ID_METADATA_KEY
    account_currency: str = "USD"  # ACCOUNT_CURRENCY: the currency TrafficStars reports values in
    fx_rates: Mapping[str, Decimal] = field(default_factory=dict)  # FX_RATES: {"EUR": "1.08"} account units per unit
    value_policy: ValuePolicy = field(default_factory=ValuePolicy)  # VALUE_POLICY, VALUE_FIXED, VALUE_PERCENT, ...
    forward_test_events: bool = False  # FORWARD_TEST_EVENTS: also forward test-mode purchases (Stripe livemode=false)
    secret_max_age_seconds: int = 300  # SECRET_MAX_AGE_SECONDS: how long the fetched secret is cached
    secret_refresh_min_interval_seconds: float = 5.0  # SECRET_REFRESH_MIN_INTERVAL_SECONDS: bound on forced refetches
    connect_timeout_seconds: float = 1.0  # TRAFFICSTARS_CONNECT_TIMEOUT
    read_timeout_seconds: float = 2.5  # TRAFFICSTARS_READ_TIMEOUT
    send_lease_seconds: int = 30  # SEND_LEASE_SECONDS: how long a claim to send a conversion holds
    signature_tolerance_seconds: int = 300  # SIGNATURE_TOLERANCE_SECONDS: allowed clock skew of signed timestamps
    retention_days: int = 90  # RETENTION_DAYS: records expire (DynamoDB TTL) this long after their last change
    max_body_bytes: int = 262_144  # MAX_BODY_BYTES: larger bodies are refused with 413
    retry_queue_url: str | None = None  # RETRY_QUEUE_URL: SQS queue of the retry worker (unset: senders retry)
    dead_letter_queue_url: str | None = None  # DEAD_LETTER_QUEUE_URL: where exhausted conversions are parked
    retry_policy: RetryPolicy = field(default_factory=RetryPolicy)  # RETRY_BASE_DELAY_SECONDS, RETRY_MAX_…, …
    sweep_grace_seconds: int = 60  # SWEEP_GRACE_SECONDS: how late a due conversion may be before the sweep acts
    # UPGRADES_COUNT_AS (nothing|renewal): what an upgrade's or proration's charge is sent as (README lifecycle table)
    upgrades_count_as: UpgradePolicy = "nothing"
    # POSTBACK_APPROVED_STATUSES: tracker `status` values that count (lower-case); an empty status always counts
    postback_approved_statuses: frozenset[str] = field(
        default_factory=lambda: frozenset(DEFAULT_POSTBACK_APPROVED_STATUSES.split(","))
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and validate every setting from ``environ`` (default: the process environment)."""
        env = os.environ if environ is None else environ
        local_mode = _bool(env, "LOCAL_MODE", False)
        return cls(
            secret_id=_required(env, "SECRET_ID"),
            table_name=_required(env, "TABLE_NAME"),
            trafficstars_url=_trafficstars_url(env, local_mode),
            postback_options=_postback_options(env),
            local_mode=local_mode,
            click_id_metadata_key=_text(env, "CLICK_ID_METADATA_KEY", "click_id"),
            account_currency=_currency(env, "ACCOUNT_CURRENCY", "USD"),
            fx_rates=_fx_rates(env),
            value_policy=_value_policy(env),
            forward_test_events=_bool(env, "FORWARD_TEST_EVENTS", False),
            secret_max_age_seconds=int(_number(env, "SECRET_MAX_AGE_SECONDS", "300", minimum=1, integer=True)),
            secret_refresh_min_interval_seconds=float(
                _number(env, "SECRET_REFRESH_MIN_INTERVAL_SECONDS", "5", minimum=0)
            ),
            connect_timeout_seconds=float(_number(env, "TRAFFICSTARS_CONNECT_TIMEOUT", "1.0", minimum=0.05)),
            read_timeout_seconds=float(_number(env, "TRAFFICSTARS_READ_TIMEOUT", "2.5", minimum=0.05)),
            send_lease_seconds=int(_number(env, "SEND_LEASE_SECONDS", "30", minimum=5, integer=True)),
            signature_tolerance_seconds=int(
                _number(env, "SIGNATURE_TOLERANCE_SECONDS", "300", minimum=1, integer=True)
            ),
            retention_days=int(_number(env, "RETENTION_DAYS", "90", minimum=1, integer=True)),
            max_body_bytes=int(_number(env, "MAX_BODY_BYTES", "262144", minimum=1024, integer=True)),
            retry_queue_url=env.get("RETRY_QUEUE_URL", "").strip() or None,
            dead_letter_queue_url=env.get("DEAD_LETTER_QUEUE_URL", "").strip() or None,
            retry_policy=RetryPolicy(
                base_delay_seconds=float(_number(env, "RETRY_BASE_DELAY_SECONDS", "30", minimum=0.01)),
                max_delay_seconds=float(_number(env, "RETRY_MAX_DELAY_SECONDS", "3600", minimum=0.01)),
                window_seconds=float(_number(env, "RETRY_WINDOW_SECONDS", "259200", minimum=1)),
            ),
            sweep_grace_seconds=int(_number(env, "SWEEP_GRACE_SECONDS", "60", minimum=0, integer=True)),
            postback_approved_statuses=_approved_statuses(env),
            upgrades_count_as=_upgrade_policy(env),
        )


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise SettingsError(f"{name} is required and not set")
    return value


def _text(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, default).strip()
    if not value:
        raise SettingsError(f"{name} must not be empty")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None:
        return default
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


def _number(env: Mapping[str, str], name: str, default: str, *, minimum: float, integer: bool = False) -> Decimal:
    raw = env.get(name, default).strip()
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None
    if not value.is_finite() or value < Decimal(str(minimum)) or (integer and value != value.to_integral_value()):
        kind = "an integer" if integer else "a number"
        raise SettingsError(f"{name} must be {kind} >= {minimum}, got {raw!r}")
    return value


def _currency(env: Mapping[str, str], name: str, default: str) -> str:
    raw = env.get(name, default).strip().upper()
    if len(raw) != 3 or not raw.isalpha():
        raise SettingsError(f"{name} must be a three-letter ISO 4217 code, got {raw!r}")
    return raw


def _fx_rates(env: Mapping[str, str]) -> dict[str, Decimal]:
    raw = env.get("FX_RATES", "").strip()
    if not raw:
        return {}
    try:
        table = json.loads(raw)
    except ValueError:
        raise SettingsError('FX_RATES must be a JSON object such as {"EUR": "1.08"}') from None
    if not isinstance(table, dict):
        raise SettingsError('FX_RATES must be a JSON object such as {"EUR": "1.08"}')
    rates: dict[str, Decimal] = {}
    for code, rate in table.items():
        try:
            value = Decimal(str(rate))
        except InvalidOperation:
            value = Decimal(0)
        if not isinstance(code, str) or len(code) != 3 or not code.isalpha() or not value.is_finite() or value <= 0:
            raise SettingsError(f"FX_RATES entry {code!r}: {rate!r} must map a currency code to a positive rate")
        rates[code.upper()] = value
    return rates


def _approved_statuses(env: Mapping[str, str]) -> frozenset[str]:
    """Comma-separated status words, case-folded. Empty: only postbacks without a status count. A reversal word
    cannot be approved (it would count a refund as a sale, the mistake the allow-list exists to prevent)."""
    name = "POSTBACK_APPROVED_STATUSES"
    raw = env.get(name, DEFAULT_POSTBACK_APPROVED_STATUSES)
    words = [word.strip().lower() for word in raw.split(",")]
    if words == [""]:
        return frozenset()
    for word in words:
        if not STATUS_WORD.fullmatch(word):
            raise SettingsError(f"{name} must be comma-separated status words (no spaces), got {raw!r}")
        if word in REVERSAL_STATUSES:
            raise SettingsError(f"{name} must not list {word!r}: it reverses a conversion ({REVERSAL_STATUSES[word]})")
    return frozenset(words)


def _upgrade_policy(env: Mapping[str, str]) -> UpgradePolicy:
    policy = env.get("UPGRADES_COUNT_AS", "nothing").strip().lower() or "nothing"
    if policy not in ("nothing", "renewal"):
        raise SettingsError(f"UPGRADES_COUNT_AS must be nothing or renewal, got {policy!r}")
    return policy  # type: ignore[return-value]


def _value_policy(env: Mapping[str, str]) -> ValuePolicy:
    kind = env.get("VALUE_POLICY", "amount").strip().lower()
    if kind not in ("amount", "fixed", "percent", "none"):
        raise SettingsError(f"VALUE_POLICY must be amount, fixed, percent or none, got {kind!r}")
    action = env.get("VALUE_OUT_OF_RANGE", "clamp").strip().lower()
    if action not in ("clamp", "omit"):
        raise SettingsError(f"VALUE_OUT_OF_RANGE must be clamp or omit, got {action!r}")
    range_action: RangeAction = "clamp" if action == "clamp" else "omit"
    fixed = _number(env, "VALUE_FIXED", "0", minimum=0)
    if kind == "fixed" and "VALUE_FIXED" not in env:
        raise SettingsError("VALUE_FIXED is required when VALUE_POLICY is fixed")
    percent = _number(env, "VALUE_PERCENT", "100", minimum=0)
    if kind == "percent" and "VALUE_PERCENT" not in env:
        raise SettingsError("VALUE_PERCENT is required when VALUE_POLICY is percent")
    return ValuePolicy(kind=kind, fixed=fixed, percent=percent, out_of_range=range_action)  # type: ignore[arg-type]


def _postback_options(env: Mapping[str, str]) -> PostbackOptions:
    form = env.get("TRAFFICSTARS_URL_FORM", "path").strip().lower() or "path"
    if form not in ("path", "query"):
        raise SettingsError(f"TRAFFICSTARS_URL_FORM must be path or query, got {form!r}")
    goal_ids: dict[str, str] = {}
    for kind in GOAL_KINDS:
        name = f"TRAFFICSTARS_GOAL_{kind.upper()}"
        goal_id = env.get(name, "").strip()
        if goal_id and not (goal_id.isascii() and goal_id.isdigit()):
            raise SettingsError(f"{name} must be a TrafficStars goal id (digits), got {goal_id!r}")
        if goal_id:
            goal_ids[kind] = goal_id
    raw_price = env.get("TRAFFICSTARS_PRICE", "").strip().lower()
    fixed_price = None
    if raw_price not in ("", "none", "value"):
        fixed_price = _number(env, "TRAFFICSTARS_PRICE", "0", minimum=float(MIN_VALUE))
        if fixed_price > MAX_VALUE:
            raise SettingsError(f"TRAFFICSTARS_PRICE must be at most {MAX_VALUE}, got {raw_price!r}")
    allow_duplicates = _bool(env, "TRAFFICSTARS_ALLOW_DUPLICATES", False)
    if form == "path":
        given = [f"TRAFFICSTARS_GOAL_{kind.upper()}" for kind in goal_ids]
        given += ["TRAFFICSTARS_PRICE"] if raw_price not in ("", "none") else []
        given += ["TRAFFICSTARS_ALLOW_DUPLICATES"] if allow_duplicates else []
        if given:
            raise SettingsError(f"{', '.join(given)} exist only in the query form: set TRAFFICSTARS_URL_FORM=query")
        return PostbackOptions()
    price: PriceSource = "none"
    if fixed_price is not None:
        price = "fixed"
    elif raw_price == "value":
        price = "value"
    return PostbackOptions("query", goal_ids, price, fixed_price, allow_duplicates)


def _trafficstars_url(env: Mapping[str, str], local_mode: bool) -> str:
    raw = env.get("TRAFFICSTARS_URL", DEFAULT_TRAFFICSTARS_URL).strip().rstrip("/")
    parts = urlsplit(raw)
    if parts.query or parts.fragment or not parts.hostname:
        raise SettingsError(f"TRAFFICSTARS_URL must be a base URL without query, like {DEFAULT_TRAFFICSTARS_URL}")
    if parts.scheme == "https":
        return raw
    if parts.scheme == "http" and local_mode and _is_loopback(parts.hostname):
        return raw
    raise SettingsError(
        "TRAFFICSTARS_URL must use https: the key and lead_code go only over HTTPS "
        "(http:// is accepted only for a loopback host with LOCAL_MODE=true)"
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
