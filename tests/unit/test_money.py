"""Money: minor units by ISO 4217 exponent (with Stripe's exceptions), FX, value policy, 0.01–200 range."""

from __future__ import annotations

from decimal import Decimal
from functools import partial

import pytest

from postback_relay.core import money
from postback_relay.core.money import (
    Money,
    ValuePolicy,
    format_value,
    from_minor_units,
)
from postback_relay.networks.trafficstars import VALUE_RANGE
from postback_relay.platforms.stripe import STRIPE_EXPONENTS

decide_value = partial(money.decide_value, accepted=VALUE_RANGE)  # the range TrafficStars takes


@pytest.mark.parametrize(
    ("amount", "currency", "table", "major"),
    [
        (4900, "usd", None, "49.00"),
        (500, "JPY", None, "500"),
        (1234, "KWD", None, "1.234"),
        (10000, "CLF", None, "1.0000"),
        (500, "isk", STRIPE_EXPONENTS, "5.00"),  # Stripe sends ISK with two decimals
        (500, "ISK", None, "500"),  # ISO: zero decimals
        (1500, "MGA", STRIPE_EXPONENTS, "1500"),  # zero-decimal at Stripe, 2 in ISO
        (1500, "MGA", None, "15.00"),
        (1000, "UGX", STRIPE_EXPONENTS, "1000"),
    ],
)
def test_minor_units_use_the_currency_exponent(amount: int, currency: str, table: object, major: str) -> None:
    money = from_minor_units(amount, currency, table) if table else from_minor_units(amount, currency)
    assert money == Money(Decimal(major), currency.upper())
    assert str(money.amount) == major


def usd(amount: str) -> Money:
    return Money(Decimal(amount), "USD")


def test_the_amount_in_the_account_currency_is_sent_as_is() -> None:
    assert decide_value(usd("49.00"), ValuePolicy(), "USD", {}).value == Decimal("49.00")


def test_other_currencies_are_converted_with_the_rate_table() -> None:
    decision = decide_value(Money(Decimal("100"), "EUR"), ValuePolicy(), "USD", {"EUR": Decimal("1.08")})
    assert decision.value == Decimal("108.00")
    assert decision.note == "converted_from:EUR"


def test_an_unknown_currency_sends_no_value_rather_than_a_wrong_one() -> None:
    decision = decide_value(Money(Decimal("100"), "BRL"), ValuePolicy(), "USD", {"EUR": Decimal("1.08")})
    assert decision.value is None
    assert decision.note == "unknown_currency:BRL"


def test_fixed_and_percent_policies() -> None:
    assert decide_value(usd("49"), ValuePolicy(kind="fixed", fixed=Decimal("12.5")), "USD", {}).value == Decimal(
        "12.50"
    )
    assert decide_value(None, ValuePolicy(kind="fixed", fixed=Decimal("3")), "USD", {}).value == Decimal("3.00")
    assert decide_value(usd("49"), ValuePolicy(kind="percent", percent=Decimal("30")), "USD", {}).value == Decimal(
        "14.70"
    )
    assert decide_value(usd("49"), ValuePolicy(kind="none"), "USD", {}).value is None


@pytest.mark.parametrize(
    ("amount", "action", "value", "note"),
    [
        ("350.00", "clamp", "200.00", "out_of_range_clamped:350.00"),
        ("0.00", "clamp", "0.01", "out_of_range_clamped:0.00"),
        ("350.00", "omit", None, "out_of_range_omitted:350.00"),
        ("0.004", "omit", None, "out_of_range_omitted:0.00"),
        ("200.00", "omit", "200.00", None),
        ("0.01", "omit", "0.01", None),
    ],
)
def test_values_outside_trafficstars_range_are_clamped_or_omitted_and_noted(
    amount: str, action: str, value: str | None, note: str | None
) -> None:
    decision = decide_value(usd(amount), ValuePolicy(out_of_range=action), "USD", {})  # type: ignore[arg-type]
    assert decision.value == (Decimal(value) if value else None)
    assert decision.note == note


def test_values_are_rendered_with_two_decimals() -> None:
    assert format_value(Decimal("49")) == "49.00"
    assert format_value(Decimal("2.105")) == "2.11"


def test_the_operators_rate_comes_before_the_platforms_own_conversion() -> None:
    eur = Money(Decimal("10.00"), "EUR")
    decision = decide_value(eur, ValuePolicy(), "USD", {"EUR": Decimal("1.10")}, Money(Decimal("10.85"), "USD"))
    assert decision == (Decimal("11.00"), "converted_from:EUR")


def test_the_platforms_own_conversion_is_the_value_of_a_currency_without_a_rate() -> None:
    eur = Money(Decimal("10.00"), "EUR")
    decision = decide_value(eur, ValuePolicy(), "USD", {}, Money(Decimal("10.85"), "USD"))
    assert decision == (Decimal("10.85"), "platform_converted_from:EUR")
    percent = decide_value(eur, ValuePolicy(kind="percent", percent=Decimal("50")), "USD", {}, usd("10.85"))
    assert percent.value == Decimal("5.43")
    assert decide_value(eur, ValuePolicy(), "USD", {}).note == "unknown_currency:EUR"


def test_the_platforms_figure_in_another_currency_is_converted_with_the_table_or_not_used() -> None:
    gbp, platform = Money(Decimal("10.00"), "GBP"), usd("12.00")
    converted = decide_value(gbp, ValuePolicy(), "EUR", {"USD": Decimal("0.90")}, platform)
    assert converted == (Decimal("10.80"), "platform_converted_from:GBP;converted_from:USD")
    assert decide_value(gbp, ValuePolicy(), "EUR", {}, platform) == (None, "unknown_currency:GBP")
