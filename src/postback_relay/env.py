"""Reading one environment variable as a typed value, or failing with its name and what it accepts.

Shared by settings.py and the network modules (each reads its own variables), so neither imports the other
for a parser."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}


class SettingsError(ValueError):
    """A setting is missing or invalid; the message names it and says what it accepts."""


def required(env: Mapping[str, str], name: str) -> str:
    """A non-empty string that has no default."""
    value = env.get(name, "").strip()
    if not value:
        raise SettingsError(f"{name} is required and not set")
    return value


def text(env: Mapping[str, str], name: str, default: str) -> str:
    """A string that may be left unset but not set empty."""
    value = env.get(name, default).strip()
    if not value:
        raise SettingsError(f"{name} must not be empty")
    return value


def optional(env: Mapping[str, str], name: str) -> str | None:
    """A string, None when unset or empty."""
    return env.get(name, "").strip() or None


def flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    """true/false, yes/no, on/off, 1/0."""
    raw = env.get(name)
    if raw is None:
        return default
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


def number(env: Mapping[str, str], name: str, default: str, *, minimum: float, integer: bool = False) -> Decimal:
    """A finite decimal at least ``minimum`` (a whole number with ``integer``)."""
    raw = env.get(name, default).strip()
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None
    if not value.is_finite() or value < Decimal(str(minimum)) or (integer and value != value.to_integral_value()):
        kind = "an integer" if integer else "a number"
        raise SettingsError(f"{name} must be {kind} >= {minimum}, got {raw!r}")
    return value


def currency(env: Mapping[str, str], name: str, default: str) -> str:
    """A three-letter ISO 4217 code, upper-cased."""
    raw = env.get(name, default).strip().upper()
    if len(raw) != 3 or not raw.isalpha():
        raise SettingsError(f"{name} must be a three-letter ISO 4217 code, got {raw!r}")
    return raw


def transport_allowed(scheme: str, host: str, local_mode: bool) -> bool:
    """Whether a URL of ``scheme`` to ``host`` may carry the relay's keys and conversions: https always; plain
    http only to loopback, in the local run (the tests' and `make run`'s emulators). The one rule behind
    TRAFFICSTARS_URL, the platform API bases and the forward URLs; each says its own words when it refuses."""
    return scheme == "https" or (scheme == "http" and local_mode and is_loopback(host))


def is_loopback(host: str) -> bool:
    """localhost or a loopback address: where plain HTTP is tolerated, in the local run only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# ---- The table's readers: (environment, name, default) → value, each raising SettingsError naming the variable.

Reader = Callable[[Mapping[str, str], str, str], Any]


class Variable(NamedTuple):
    """One environment variable of the relay: settings.VARIABLES and each network's VARIABLES hold them."""

    name: str
    field: str  # the attribute it fills; "retry_policy.window_seconds": a part of a composite one
    read: Reader  # (environment, name, default) → the value, or SettingsError naming the variable
    default: str  # as the environment would hold it; "" for a required one or one that is unset by default
    parameter: str | None = None  # the template parameter a deployer sets it with, if any
    per_tenant: bool = False  # a tenant may set its own (core/tenant.py); else one value for the deployment


def read_variables(variables: tuple[Variable, ...], environ: Mapping[str, str]) -> dict[str, Any]:
    """Each variable read into its field; a dotted field fills a dict of the composite's parts."""
    values: dict[str, Any] = {}
    for variable in variables:
        value = variable.read(environ, variable.name, variable.default)
        whole_name, _, part = variable.field.partition(".")
        if part:
            values.setdefault(whole_name, {})[part] = value
        else:
            values[whole_name] = value
    return values


def text_reader(environ: Mapping[str, str], name: str, default: str) -> str:
    """A string that may be left unset but not set empty; required when it has no default."""
    return text(environ, name, default) if default else required(environ, name)


def optional_reader(environ: Mapping[str, str], name: str, default: str) -> str | None:
    """A string, None when unset or empty."""
    return optional(environ, name)


def flag_reader(environ: Mapping[str, str], name: str, default: str) -> bool:
    """true/false (and the other words of ``flag``)."""
    return flag(environ, name, default in TRUE_WORDS)


def currency_reader(environ: Mapping[str, str], name: str, default: str) -> str:
    """A currency code."""
    return currency(environ, name, default)


def whole(minimum: int) -> Reader:
    """An integer at least ``minimum``."""

    def read(environ: Mapping[str, str], name: str, default: str) -> int:
        return int(number(environ, name, default, minimum=minimum, integer=True))

    return read


def seconds(minimum: float) -> Reader:
    """A duration in seconds (float) at least ``minimum``."""

    def read(environ: Mapping[str, str], name: str, default: str) -> float:
        return float(number(environ, name, default, minimum=minimum))

    return read


def decimal(minimum: float) -> Reader:
    """An exact decimal at least ``minimum``."""

    def read(environ: Mapping[str, str], name: str, default: str) -> Decimal:
        return number(environ, name, default, minimum=minimum)

    return read


def choice(*words: str) -> Reader:
    """One of ``words`` (case-folded); empty means the default."""
    listed = " or ".join([", ".join(words[:-1]), words[-1]])

    def read(environ: Mapping[str, str], name: str, default: str) -> str:
        word = environ.get(name, default).strip().lower() or default
        if word not in words:
            raise SettingsError(f"{name} must be {listed}, got {word!r}")
        return word

    return read
