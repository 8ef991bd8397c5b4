"""Shipping on the Checkout Session: the options we offer, and what the buyer chose.

With SHIPPING_COUNTRIES set, a session collects a shipping address (and a phone number,
which carriers ask for) and offers the active rates as inline `shipping_rate_data`. The
session's metadata lists the offered rates' ids in the order offered (`shippingRates`),
so the rate the buyer chose is found without asking Stripe: `shipping_cost.shipping_rate`
names one of `shipping_options` (Stripe's `shr_…` ids, in our order), or, expanded,
carries our id in its metadata. Its amount is then taken from our rate table, never
from Stripe's report, so a session whose shipping cost differs fails the payment check.

Where Stripe puts it (https://docs.stripe.com/api/checkout/sessions/object):
`collected_information.shipping_details` since API version 2025-02-24 (the only place
since 2025-03-31.basil), the top-level `shipping_details` before; `shipping_cost`
{amount_total, shipping_rate}; `total_details.amount_shipping`; the phone in
`customer_details.phone`.
"""

from __future__ import annotations

import hashlib
import json

from shopctl.config import Settings
from shopctl.models import Order, ShippingRate
from shopctl.services.orders.shipping import Shipping, offered_rates, rates_by_id

RATES_KEY = "shippingRates"


def session_params(settings: Settings, currency: str) -> tuple[dict, dict]:
    """(the session's shipping parameters, the metadata that names the offered rates);
    both empty when nothing ships."""
    if not settings.shipping_countries:
        return {}, {}
    rates = offered_rates(currency)
    params = {
        "shipping_address_collection": {"allowed_countries": list(settings.shipping_countries)},
        "phone_number_collection": {"enabled": True},
    }
    if rates:
        params["shipping_options"] = [{"shipping_rate_data": _rate_data(rate)} for rate in rates]
    return params, {RATES_KEY: ",".join(str(rate.id) for rate in rates)}


def _rate_data(rate: ShippingRate) -> dict:
    data = {
        "type": "fixed_amount",
        "display_name": rate.name,
        "fixed_amount": {"amount": rate.amount_cents, "currency": rate.currency},
        "metadata": {"shippingRateId": str(rate.id)},
    }
    estimate = {
        bound: {"unit": "business_day", "value": days}
        for bound, days in (("minimum", rate.min_days), ("maximum", rate.max_days))
        if days is not None
    }
    if estimate:
        data["delivery_estimate"] = estimate
    return data


def params_digest(params: dict) -> str:
    """A short digest of the shipping parameters, for the session's idempotency key: a
    rate added between two attempts must not replay the first attempt's session."""
    shipping = {
        k: params[k] for k in ("shipping_address_collection", "shipping_options") if k in params
    }
    if not shipping:
        return ""
    return hashlib.sha256(json.dumps(shipping, sort_keys=True).encode()).hexdigest()[:12]


# --- reading the session ------------------------------------------------------------------


def _dict(value) -> dict:
    return value if isinstance(value, dict) else {}


def _id(value) -> str | None:
    value = value.get("id") if isinstance(value, dict) else value
    return value if isinstance(value, str) and value else None


def _offered(obj: dict) -> list[int] | None:
    """Our rate ids the session was offered (its metadata); None when it offered no shipping."""
    text = _dict(obj.get("metadata")).get(RATES_KEY)
    if not isinstance(text, str):
        return None
    return [int(part) for part in text.split(",") if part.strip().isdigit()]


def waits_for_session(order: Order, obj: dict) -> bool:
    """A PaymentIntent (or charge) of a session that offered shipping says neither where
    nor which rate: the session's own event applies that payment, with its shipping."""
    kind = obj.get("object")
    return kind != "checkout.session" and _offered(obj) is not None and order.shipping_cents is None


def _details(obj: dict) -> dict | None:
    details = _dict(obj.get("collected_information")).get("shipping_details")
    if not isinstance(details, dict):
        details = obj.get("shipping_details")  # API versions before 2025-03-31
    return details if isinstance(details, dict) else None


def _text(value, limit: int) -> str | None:
    return (value.strip()[:limit] or None) if isinstance(value, str) else None


def _chosen_rate(obj: dict, offered: list[int]) -> int | None:
    """Our id of the rate the buyer chose, or None when the session does not say one of ours."""
    reference = _dict(obj.get("shipping_cost")).get("shipping_rate")
    ours = _dict(_dict(reference).get("metadata")).get("shippingRateId")
    if isinstance(ours, str) and ours.isdigit():
        return int(ours) if int(ours) in offered else None
    stripe_ids = [
        _id(_dict(option).get("shipping_rate")) for option in obj.get("shipping_options") or []
    ]
    chosen = _id(reference)
    if chosen is None or chosen not in stripe_ids or len(stripe_ids) != len(offered):
        return None
    return offered[stripe_ids.index(chosen)]


def chosen_shipping(obj: dict) -> tuple[Shipping | None, str | None]:
    """(what the session says ships, at our rate's amount; why it cannot be accepted, or
    None). (None, None) when the session ships nothing."""
    offered, details, cost = _offered(obj), _details(obj), obj.get("shipping_cost")
    if not offered and details is None and cost is None:
        return None, None
    rate, problem = None, None
    if offered or cost is not None:
        rate_id = _chosen_rate(obj, offered or [])
        rate = rates_by_id([rate_id]).get(rate_id) if rate_id is not None else None
        reported = _dict(cost).get("amount_total")
        if rate is None:
            named = _id(_dict(cost).get("shipping_rate"))
            return None, f"shipping rate {named} is not one we offered"
        if reported != rate.amount_cents:
            problem = (
                f"shipping cost {reported} is not {rate.amount_cents}, the amount of our "
                f"rate {rate.id} ({rate.name})"
            )
    address = _dict(_dict(details).get("address"))
    shipping = Shipping(
        name=_text(_dict(details).get("name"), 300),
        line1=_text(address.get("line1"), 300),
        line2=_text(address.get("line2"), 300),
        city=_text(address.get("city"), 200),
        postal_code=_text(address.get("postal_code"), 40),
        state=_text(address.get("state"), 200),
        country=_text(address.get("country"), 2),
        phone=_text(_dict(obj.get("customer_details")).get("phone"), 40),
        rate_id=rate.id if rate else None,
        rate_name=rate.name if rate else None,
        amount_cents=rate.amount_cents if rate else 0,
    )
    return shipping, problem
