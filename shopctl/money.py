"""Money as integer minor units: decimal prices in, `…Cents` integers out. Never floats.

A currency's exponent says how many minor units make one major unit: 2 for usd
(100 cents), 0 for jpy, 3 for kwd. Stripe's lists of zero- and three-decimal
currencies are the reference: https://docs.stripe.com/currencies#zero-decimal
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

# Stripe's zero-decimal currencies
ZERO_DECIMAL = frozenset({"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf"})
ZERO_DECIMAL |= {"ugx", "vnd", "vuv", "xaf", "xof", "xpf"}
THREE_DECIMAL = frozenset(("bhd", "iqd", "jod", "kwd", "lyd", "omr", "tnd"))

# Stripe refuses to charge more than 99,999,999 minor units in one payment, so a
# unit price above it could never be paid.
MAX_MINOR_UNITS = 99_999_999

_PLAIN_DECIMAL = re.compile(r"^(\d+(\.\d*)?|\.\d+)$")
_MAX_TEXT = 40


def exponent(currency: str) -> int:
    """Decimal places of `currency`'s minor unit (ISO 4217; 2 when unknown)."""
    code = currency.lower()
    if code in ZERO_DECIMAL:
        return 0
    if code in THREE_DECIMAL:
        return 3
    return 2


def parse_amount(value: object) -> Decimal:
    """A non-negative finite Decimal from a JSON number or a decimal string like "12.50".

    Floats go through `str()` so 12.505 stays 12.505 instead of 12.50499999…
    Raises ValueError with a message fit for the person who typed the value.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise ValueError("must be a decimal number or a string like 12.50")
    if isinstance(value, str):
        text = value.strip()
        if len(text) > _MAX_TEXT or not _PLAIN_DECIMAL.match(text):
            raise ValueError("must be a decimal amount like 12.50 (digits, one optional point)")
        return Decimal(text)
    try:
        amount = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation:
        raise ValueError("must be a decimal number") from None
    if not amount.is_finite():
        raise ValueError("must be a finite number")
    if amount < 0:
        raise ValueError("must not be negative")
    return amount


def to_minor_units(value: object, currency: str) -> int:
    """`value` in `currency`'s minor units, rounded half-up: "12.505" usd → 1251."""
    amount = parse_amount(value)
    if amount > MAX_MINOR_UNITS:
        raise ValueError(f"must be at most {format_minor_units(MAX_MINOR_UNITS, currency)}")
    places = exponent(currency)
    minor = int((amount * 10**places).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    if minor > MAX_MINOR_UNITS:
        raise ValueError(f"must be at most {format_minor_units(MAX_MINOR_UNITS, currency)}")
    return minor


def format_minor_units(minor: int, currency: str) -> str:
    """1250, "usd" → "12.50 USD"; 1200, "jpy" → "1200 JPY"."""
    places = exponent(currency)
    amount = Decimal(minor).scaleb(-places)
    return f"{amount:.{places}f} {currency.upper()}"
