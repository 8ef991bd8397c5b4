"""Decimal prices to integer minor units: exponents, half-up rounding, refusals."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shopctl.money import MAX_MINOR_UNITS, exponent, format_minor_units, to_minor_units


@pytest.mark.parametrize(
    "currency, places",
    [
        ("usd", 2),
        ("EUR", 2),
        ("jpy", 0),
        ("krw", 0),
        ("kwd", 3),
        ("bhd", 3),
        ("jod", 3),
        ("omr", 3),
        ("tnd", 3),
        ("xyz", 2),
    ],
)
def test_exponent_per_currency(currency, places):
    assert exponent(currency) == places


@pytest.mark.parametrize(
    "value, currency, minor",
    [
        ("12.505", "usd", 1251),  # half-up, like the Express API it replaces
        ("12.504", "usd", 1250),
        ("12.50", "usd", 1250),
        (12.505, "usd", 1251),  # a JSON number goes through str(), never float math
        (19.99, "usd", 1999),
        (0.1, "usd", 10),
        (12, "usd", 1200),
        (".5", "usd", 50),
        ("7.", "usd", 700),
        ("0", "usd", 0),
        (" 3.20 ", "eur", 320),
        ("1200", "jpy", 1200),
        ("1200.5", "jpy", 1201),
        ("1.2345", "kwd", 1230),  # KWD charges in steps of 10 fils: half-up to the step
        ("1.2344", "kwd", 1230),
        ("1.235", "kwd", 1240),
        ("5.5", "isk", 600),  # ISK: whole krónur, written with decimals 00
        ("5", "ugx", 500),
        (Decimal("2.675"), "usd", 268),
    ],
)
def test_to_minor_units(value, currency, minor):
    assert to_minor_units(value, currency) == minor


@pytest.mark.parametrize(
    "value, message",
    [
        (True, "decimal number"),
        (None, "decimal number"),
        ([1], "decimal number"),
        ("abc", "decimal amount"),
        ("1e3", "decimal amount"),
        ("-1", "decimal amount"),
        ("1,50", "decimal amount"),
        ("", "decimal amount"),
        ("1" * 50, "decimal amount"),
        (float("nan"), "finite"),
        (float("inf"), "finite"),
        (-0.01, "negative"),
        (10**30, "at most"),
        ("1000000", "at most"),  # 100,000,000 cents: more than Stripe can charge
    ],
)
def test_refused_amounts(value, message):
    with pytest.raises(ValueError, match=message):
        to_minor_units(value, "usd")


def test_the_largest_price_is_stripes_limit():
    assert to_minor_units("999999.99", "usd") == MAX_MINOR_UNITS
    assert to_minor_units(str(MAX_MINOR_UNITS), "jpy") == MAX_MINOR_UNITS
    with pytest.raises(ValueError):
        to_minor_units(str(MAX_MINOR_UNITS + 1), "jpy")


def test_format_minor_units():
    assert format_minor_units(1250, "usd") == "12.50 USD"
    assert format_minor_units(1200, "jpy") == "1200 JPY"
    assert format_minor_units(1235, "kwd") == "1.235 KWD"


@given(st.integers(min_value=0, max_value=MAX_MINOR_UNITS))
def test_formatted_amounts_convert_back_exactly(minor):
    for currency in ("usd", "jpy", "kwd"):
        on_step = minor - minor % (10 if currency == "kwd" else 1)
        text = format_minor_units(on_step, currency).split()[0]
        assert to_minor_units(text, currency) == on_step
