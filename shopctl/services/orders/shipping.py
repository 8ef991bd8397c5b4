"""Shipping: the rates Checkout offers, and where an order ships for how much.

Rates are the operator's (`shopctl shipping rates …`); an order's shipping is written
once, when its payment is applied (services/payments/handlers.py), from the Checkout
Session, checked against these rates. A rate's amount never changes: a session in
flight was priced with it, so a new price is a new rate and the old one is disabled.
The order's `amount_cents` is its goods plus `shipping_cents`.
"""

from __future__ import annotations

from dataclasses import dataclass

from shopctl.db import write_transaction
from shopctl.errors import Conflict, InvalidInput, NotFound
from shopctl.models import Order, ShippingRate, utcnow
from shopctl.money import MAX_MINOR_UNITS, currency, format_minor_units
from shopctl.services.common import iso

# Stripe Checkout offers at most 5 shipping options per session.
MAX_ACTIVE_RATES = 5
MAX_NAME_LENGTH = 100  # Stripe's limit for a shipping rate's display_name
MAX_DAYS = 365


@dataclass(frozen=True)
class Shipping:
    """What the buyer chose at Checkout, ready to store on the order."""

    name: str | None
    line1: str | None
    line2: str | None
    city: str | None
    postal_code: str | None
    state: str | None
    country: str | None
    phone: str | None
    rate_id: int | None  # None: an address without a rate (none was active)
    rate_name: str | None
    amount_cents: int


def rate_json(rate: ShippingRate) -> dict:
    return {
        "id": rate.id,
        "name": rate.name,
        "amountCents": rate.amount_cents,
        "currency": rate.currency,
        "minDays": rate.min_days,
        "maxDays": rate.max_days,
        "active": rate.active,
        "createdAt": iso(rate.created_at),
    }


def _problems(name: str, amount: int, code: str, min_days, max_days) -> list[dict]:
    problems = []
    if not name.strip() or len(name.strip()) > MAX_NAME_LENGTH:
        problems.append({"path": "name", "message": f"1 to {MAX_NAME_LENGTH} characters"})
    elif not name.strip().isprintable():
        problems.append({"path": "name", "message": "no control characters"})
    rules = currency(code)
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
        problems.append({"path": "amount", "message": "a whole number of minor units, 0 or more"})
    elif amount > MAX_MINOR_UNITS:
        limit = format_minor_units(MAX_MINOR_UNITS, code)
        problems.append({"path": "amount", "message": f"at most {limit}"})
    elif amount % rules.step:
        step = format_minor_units(rules.step, code)
        problems.append(
            {"path": "amount", "message": f"Stripe charges {code.upper()} in steps of {step}"}
        )
    for path, days in (("minDays", min_days), ("maxDays", max_days)):
        if days is not None and not 1 <= days <= MAX_DAYS:
            problems.append({"path": path, "message": f"1 to {MAX_DAYS} business days"})
    if min_days is not None and max_days is not None and min_days > max_days:
        problems.append({"path": "minDays", "message": "must not be more than maxDays"})
    return problems


def add_rate(
    name: str,
    amount_cents: int,
    currency_code: str,
    *,
    min_days: int | None = None,
    max_days: int | None = None,
) -> dict:
    """A new active rate; InvalidInput for bad values, Conflict past the limits."""
    if problems := _problems(name, amount_cents, currency_code, min_days, max_days):
        raise InvalidInput(problems)
    name = name.strip()
    with write_transaction():
        active = ShippingRate.select().where(ShippingRate.active)
        if active.where(ShippingRate.name == name).exists():
            raise Conflict(f"An active shipping rate is already named {name!r}")
        if active.count() >= MAX_ACTIVE_RATES:
            raise Conflict(
                f"At most {MAX_ACTIVE_RATES} shipping rates can be active (Stripe Checkout "
                "offers up to 5): disable one first"
            )
        rate = ShippingRate.create(
            name=name,
            amount_cents=amount_cents,
            currency=currency_code.lower(),
            min_days=min_days,
            max_days=max_days,
            active=True,
            created_at=utcnow(),
        )
    return rate_json(rate)


def list_rates(*, active_only: bool = False) -> list[dict]:
    query = ShippingRate.select().order_by(ShippingRate.id)
    if active_only:
        query = query.where(ShippingRate.active)
    return [rate_json(rate) for rate in query]


def disable_rate(rate_id: int) -> tuple[dict, bool]:
    """(the rate, whether this call disabled it); NotFound for an unknown id."""
    with write_transaction():
        changed = (
            ShippingRate.update(active=False)
            .where((ShippingRate.id == rate_id) & ShippingRate.active)
            .execute()
        )
        rate = ShippingRate.get_or_none(ShippingRate.id == rate_id)
    if rate is None:
        raise NotFound(f"No shipping rate {rate_id}")
    return rate_json(rate), bool(changed)


def offered_rates(currency_code: str) -> list[ShippingRate]:
    """The active rates in the order's currency, the first one pre-selected at Checkout."""
    query = ShippingRate.select().where(
        ShippingRate.active & (ShippingRate.currency == currency_code.lower())
    )
    return list(query.order_by(ShippingRate.amount_cents, ShippingRate.id))


def dearest_rate_cents(currency_code: str) -> int:
    """The most a buyer can add for shipping at Checkout (0 with no rate offered)."""
    rates = offered_rates(currency_code)
    return max((rate.amount_cents for rate in rates), default=0)


def rates_by_id(rate_ids: list[int]) -> dict[int, ShippingRate]:
    """Rates by id, disabled ones too: a session may have been priced before a disable."""
    return {rate.id: rate for rate in ShippingRate.select().where(ShippingRate.id.in_(rate_ids))}


def goods_cents(order: Order) -> int:
    """What the order's items cost, without shipping."""
    return order.amount_cents - (order.shipping_cents or 0)


def ship_to(order: Order, shipping: Shipping) -> None:
    """Store where the order ships and for how much, inside the payment's transaction;
    its amount becomes its goods plus shipping. The same shipping again changes nothing."""
    total = goods_cents(order) + shipping.amount_cents
    fields = {
        "shipping_name": shipping.name,
        "shipping_line1": shipping.line1,
        "shipping_line2": shipping.line2,
        "shipping_city": shipping.city,
        "shipping_postal_code": shipping.postal_code,
        "shipping_state": shipping.state,
        "shipping_country": shipping.country,
        "shipping_phone": shipping.phone,
        "shipping_rate_id": shipping.rate_id,
        "shipping_rate_name": shipping.rate_name,
        "shipping_cents": shipping.amount_cents,
        "amount_cents": total,
    }
    Order.update(**fields, updated_at=utcnow()).where(Order.id == order.id).execute()
    for name, value in fields.items():
        setattr(order, name, value)


def shipping_json(order: Order) -> dict | None:
    """`shipping` of GET /order/:id: null when nothing ships."""
    if order.shipping_cents is None:
        return None
    return {
        "address": {
            "name": order.shipping_name,
            "line1": order.shipping_line1,
            "line2": order.shipping_line2,
            "city": order.shipping_city,
            "postalCode": order.shipping_postal_code,
            "state": order.shipping_state,
            "country": order.shipping_country,
            "phone": order.shipping_phone,
        },
        "rate": {"id": order.shipping_rate_id, "name": order.shipping_rate_name},
        "amountCents": order.shipping_cents,
    }
