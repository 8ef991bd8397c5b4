"""What Stripe refuses to charge, answered as Stripe does: minimums, steps, the maximum.

The rules are the data in `shopctl.money` (one table for the shop and its sandbox); this
module only shapes the refusals like Stripe's errors. The minimum assumes the account
settles in the charge's own currency.
"""

from __future__ import annotations

from decimal import Decimal

from shopctl.money import MAX_MINOR_UNITS, currency

from .params import StripeError


def major(amount: int, code: str) -> str:
    """`amount` minor units as Stripe writes them in messages: 0.50 usd, 50 jpy."""
    places = currency(code).exponent
    return f"{Decimal(amount).scaleb(-places):.{places}f} {code.lower()}"


def check_session_total(amount: int, code: str) -> None:
    rules = currency(code)
    if amount < rules.minimum:
        raise StripeError(
            "The Checkout Session's total amount due must add up to at least "
            f"{major(rules.minimum, code)}",
            code="amount_too_small",
        )
    if amount > MAX_MINOR_UNITS:
        raise StripeError(
            f"The Checkout Session's total amount must be at most {MAX_MINOR_UNITS}.",
            code="amount_too_large",
            param="line_items",
        )


def check_intent_amount(amount: int, code: str, param: str = "amount") -> None:
    rules = currency(code)
    if amount < rules.minimum:
        raise StripeError(
            f"Amount must be at least {major(rules.minimum, code)}",
            code="amount_too_small",
            param=param,
        )
    if amount > MAX_MINOR_UNITS:
        raise StripeError(
            f"Amount must be no more than {MAX_MINOR_UNITS}.",
            code="amount_too_large",
            param=param,
        )
    check_step(amount, code, param)


def check_step(amount: int, code: str, param: str) -> None:
    """Three-decimal currencies end in 0; ISK and UGX are whole units (decimals 00)."""
    step = currency(code).step
    if amount % step:
        raise StripeError(
            f"Invalid amount {amount} for {code.lower()}: amounts in {code.upper()} must be "
            f"a multiple of {step} (its smallest chargeable unit is {major(step, code)}).",
            code="invalid_charge_amount",
            param=param,
        )
