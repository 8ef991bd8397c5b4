"""Money as integer minor units, and the amounts Stripe can charge. Never floats.

Stripe's currency rules, kept here as data and used by the catalog, order placement and
the sandbox (https://docs.stripe.com/currencies):

* an amount is an integer in the currency's minor unit: 2 decimals unless listed below;
* zero-decimal currencies (JPY, KRW, …) have no minor unit;
* three-decimal currencies (BHD, JOD, KWD, OMR, TND) need the last digit to be 0:
  Stripe's payment partners charge them in steps of 10 (5.124 KWD is not chargeable);
* ISK and UGX became zero-decimal, but Stripe still takes them as two-decimal amounts
  whose decimals are 00 (5 ISK is `500`): whole units, steps of 100;
* HUF and TWD charge as two-decimal currencies (their zero-decimal rule is for payouts);
* every charge must reach a minimum per currency (0.50 USD, 0.30 GBP, 50 JPY, …). For a
  currency Stripe lists no minimum for, the minimum is that of the account's settlement
  currency after conversion, which cannot be known here: such a currency needs at least
  one chargeable step, and Stripe may still refuse a total below its equivalent;
* at most 99,999,999 minor units (8 digits) in one payment, Stripe's limit for most
  payment methods.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

ZERO_DECIMAL = frozenset(
    {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf"}
    | {"vnd", "vuv", "xaf", "xof", "xpf"}
)
THREE_DECIMAL = frozenset(("bhd", "jod", "kwd", "omr", "tnd"))
# Zero-decimal in fact, two-decimal on Stripe's wire: only whole units (decimals 00).
WHOLE_UNITS_OF_100 = frozenset(("isk", "ugx"))

# Stripe's minimum charge per currency, in that currency's minor units.
MINIMUM_CHARGE = {
    "usd": 50,
    "aed": 200,
    "ars": 50,
    "aud": 50,
    "brl": 50,
    "cad": 50,
    "chf": 50,
    "cop": 50,
    "czk": 1500,
    "dkk": 250,
    "eur": 50,
    "gbp": 30,
    "hkd": 400,
    "huf": 17500,
    "idr": 50,
    "ils": 50,
    "inr": 50,
    "jpy": 50,
    "krw": 50,
    "mxn": 1000,
    "myr": 200,
    "nok": 300,
    "nzd": 50,
    "php": 50,
    "pln": 200,
    "ron": 200,
    "rub": 50,
    "sek": 300,
    "sgd": 50,
    "thb": 1000,
    "zar": 50,
}

# Stripe refuses to charge more than 99,999,999 minor units in one payment, so a
# unit price above it could never be paid.
MAX_MINOR_UNITS = 99_999_999

# ASCII digits only: `\d` would also read "١٢" (Arabic-Indic) as 12.
_PLAIN_DECIMAL = re.compile(r"^([0-9]+(\.[0-9]*)?|\.[0-9]+)$")
_MAX_TEXT = 40


@dataclass(frozen=True)
class Currency:
    """What Stripe requires of an amount in one currency (amounts in minor units)."""

    code: str
    exponent: int  # decimal places of the minor unit on Stripe's wire
    step: int  # every amount is a multiple of this
    minimum: int  # the smallest amount one payment may charge
    listed: bool  # Stripe lists `minimum`; otherwise it is one step

    def format(self, minor: int) -> str:
        return format_minor_units(minor, self.code)


def currency(code: str) -> Currency:
    """Stripe's rules for `code` (lower or upper case; unknown codes are two-decimal)."""
    code = code.lower()
    places = 0 if code in ZERO_DECIMAL else 3 if code in THREE_DECIMAL else 2
    step = 10 if code in THREE_DECIMAL else 100 if code in WHOLE_UNITS_OF_100 else 1
    listed = code in MINIMUM_CHARGE
    return Currency(code, places, step, MINIMUM_CHARGE.get(code, step), listed)


def exponent(code: str) -> int:
    """Decimal places of `code`'s minor unit as Stripe counts them (2 when unknown)."""
    return currency(code).exponent


def parse_amount(value: object) -> Decimal:
    """A non-negative finite Decimal from a JSON number or a decimal string like "12.50".

    Floats go through `str()` so 12.505 stays 12.505 instead of 12.50499999…; strings
    are read with ASCII digits only. Raises ValueError with a message fit for the person
    who typed the value.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise ValueError("must be a decimal number or a string like 12.50")
    if isinstance(value, str):
        text = value.strip(" \t")
        if len(text) > _MAX_TEXT or not _PLAIN_DECIMAL.match(text):
            raise ValueError(
                "must be a decimal amount like 12.50 (ASCII digits 0-9, one optional point)"
            )
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


def to_minor_units(value: object, code: str) -> int:
    """`value` in `code`'s minor units, rounded half-up to a chargeable step.

    "12.505" usd → 1251; "1.2345" kwd → 1230 (KWD charges in steps of 0.010);
    "5.5" isk → 600. Only the rounding happens here: `check_chargeable` says
    whether the result is an amount Stripe can charge.
    """
    amount = parse_amount(value)
    rules = currency(code)
    if amount > MAX_MINOR_UNITS:
        raise ValueError(f"must be at most {format_minor_units(MAX_MINOR_UNITS, code)}")
    steps = (amount * 10**rules.exponent / rules.step).quantize(Decimal(1), ROUND_HALF_UP)
    minor = int(steps) * rules.step
    if minor > MAX_MINOR_UNITS:
        raise ValueError(f"must be at most {format_minor_units(MAX_MINOR_UNITS, code)}")
    return minor


def chargeable_problem(minor: int, code: str) -> str | None:
    """Why Stripe would refuse to charge `minor` units of `code`, or None if it would not."""
    rules = currency(code)
    if minor < rules.minimum:
        shown = rules.format(minor)
        if not rules.listed:
            return f"is {shown}; it must be at least {rules.format(rules.minimum)}"
        return (
            f"is {shown}; Stripe's minimum charge in {rules.code.upper()} is "
            f"{rules.format(rules.minimum)}"
        )
    if minor % rules.step:
        return (
            f"is {rules.format(minor)}; Stripe charges {rules.code.upper()} in steps of "
            f"{rules.format(rules.step)}"
        )
    if minor > MAX_MINOR_UNITS:
        limit = rules.format(MAX_MINOR_UNITS)
        return f"is {rules.format(minor)}; one payment can take at most {limit}"
    return None


def refund_problem(minor: int, code: str) -> str | None:
    """Why Stripe would refuse to refund `minor` units of `code`, or None. A refund has no
    minimum, but the same steps as a charge (KWD and the other three-decimal currencies
    in steps of 10: the last digit 0)."""
    rules = currency(code)
    if minor % rules.step:
        return (
            f"is {rules.format(minor)}; Stripe refunds {rules.code.upper()} in steps of "
            f"{rules.format(rules.step)} ({minor} must end in "
            f"{'0' if rules.step == 10 else '00'})"
        )
    return None


def check_chargeable(minor: int, code: str) -> int:
    """`minor` if Stripe can charge it in `code`; else ValueError naming the limit."""
    problem = chargeable_problem(minor, code)
    if problem:
        raise ValueError(problem)
    return minor


def format_minor_units(minor: int, code: str) -> str:
    """1250, "usd" → "12.50 USD"; 1200, "jpy" → "1200 JPY"."""
    places = exponent(code)
    amount = Decimal(minor).scaleb(-places)
    return f"{amount:.{places}f} {code.upper()}"
