"""Money: minor units, ISO 4217 exponents (a platform's own table, such as Stripe's, lives in its module), FX
to the account currency, the value policy and the network's accepted range (a parameter). Pure functions over
``Decimal``; no floats."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal, NamedTuple

# ISO 4217 minor-unit exponents that differ from the usual 2 (ISO data of 2026-01-01).
ISO_EXPONENTS: Mapping[str, int] = {
    **dict.fromkeys(
        [
            "BIF",
            "CLP",
            "DJF",
            "GNF",
            "ISK",
            "JPY",
            "KMF",
            "KRW",
            "PYG",
            "RWF",
            "UGX",
            "UYI",
            "VND",
            "VUV",
            "XAF",
            "XOF",
            "XPF",
        ],
        0,
    ),
    **dict.fromkeys(["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"], 3),
    **dict.fromkeys(["CLF", "UYW"], 4),
}

CENT = Decimal("0.01")


class Money(NamedTuple):
    """An amount in major units of an upper-case ISO currency code."""

    amount: Decimal
    currency: str


def exponent(currency: str, table: Mapping[str, int] = ISO_EXPONENTS) -> int:
    """Number of decimal places of ``currency`` in ``table`` (2 when the table does not list it)."""
    return table.get(currency.upper(), 2)


def from_minor_units(amount: int, currency: str, table: Mapping[str, int] = ISO_EXPONENTS) -> Money:
    """Turn an integer amount in minor units (cents, or yen for JPY) into major units."""
    code = currency.upper()
    return Money(Decimal(amount).scaleb(-exponent(code, table)), code)


def to_account_currency(money: Money, account_currency: str, rates: Mapping[str, Decimal]) -> Decimal | None:
    """Convert to the account currency with ``rates`` (account-currency units per one unit of the key).

    Returns None for a currency the table does not know: a missing value is better than a wrong one."""
    if money.currency == account_currency:
        return money.amount
    rate = rates.get(money.currency)
    if rate is None:
        return None
    return money.amount * rate


PolicyKind = Literal["amount", "fixed", "percent", "none"]
RangeAction = Literal["clamp", "omit"]


class ValueRange(NamedTuple):
    """The values an ad network accepts, both ends included (TrafficStars': networks/trafficstars.py)."""

    low: Decimal
    high: Decimal


@dataclass(frozen=True)
class ValuePolicy:
    """What the postback's ``value`` is: the sale amount, a fixed payout, a share of the amount, or nothing."""

    kind: PolicyKind = "amount"
    fixed: Decimal = Decimal("0")
    percent: Decimal = Decimal("100")
    out_of_range: RangeAction = "clamp"


class ValueDecision(NamedTuple):
    """The value to send (None: send no ``value``) and, when it differs from the plain amount, why."""

    value: Decimal | None
    note: str | None = None


def decide_value(
    money: Money | None,
    policy: ValuePolicy,
    account_currency: str,
    rates: Mapping[str, Decimal],
    platform_converted: Money | None = None,
    *,
    accepted: ValueRange,
) -> ValueDecision:
    """Apply the value policy, currency conversion and the network's ``accepted`` range to a sale amount.

    ``platform_converted`` is the platform's own conversion of the same amount (Lemon Squeezy's ``total_usd``).
    The operator's ``rates`` come first (one rate table for every platform); the platform's figure is used only
    for a currency the table does not list, when it is in the account currency or the table converts it."""
    if policy.kind == "none":
        return ValueDecision(None, "value_policy_none")
    if policy.kind == "fixed":
        return _fit_range(policy.fixed, policy.out_of_range, None, accepted)
    if money is None:
        return ValueDecision(None, "no_amount")
    converted = to_account_currency(money, account_currency, rates)
    note = None if money.currency == account_currency else f"converted_from:{money.currency}"
    if converted is None and platform_converted is not None:
        converted = to_account_currency(platform_converted, account_currency, rates)
        note = f"platform_converted_from:{money.currency}"
        if platform_converted.currency != account_currency:
            note += f";converted_from:{platform_converted.currency}"
    if converted is None:
        return ValueDecision(None, f"unknown_currency:{money.currency}")
    if policy.kind == "percent":
        converted = converted * policy.percent / Decimal(100)
    return _fit_range(converted, policy.out_of_range, note, accepted)


def _fit_range(value: Decimal, action: RangeAction, note: str | None, accepted: ValueRange) -> ValueDecision:
    rounded = value.quantize(CENT, rounding=ROUND_HALF_UP)
    if accepted.low <= rounded <= accepted.high:
        return ValueDecision(rounded, note)
    if action == "omit":
        return ValueDecision(None, _join(note, f"out_of_range_omitted:{format_value(rounded)}"))
    bounded = accepted.low if rounded < accepted.low else accepted.high
    return ValueDecision(bounded, _join(note, f"out_of_range_clamped:{format_value(rounded)}"))


def _join(first: str | None, second: str) -> str:
    return second if first is None else f"{first};{second}"


def format_value(value: Decimal) -> str:
    """Render a value with exactly two decimals, the way the postback and the record carry it."""
    return format(value.quantize(CENT, rounding=ROUND_HALF_UP), "f")
