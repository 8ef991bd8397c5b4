"""Shipping on Checkout Sessions: address collection, shipping options, the buyer's choice.

Created as Stripe does: each `shipping_options[i][shipping_rate_data]` becomes a
`shipping_rate` object (`shr_…`, expandable), listed in the session's `shipping_options`
in the order given, the first one pre-selected. When the buyer pays, the session gets
the address in `collected_information.shipping_details` (API version 2025-03-31 and
later; the sandbox speaks 2026-10-28, which has no top-level `shipping_details`), the
phone in `customer_details.phone`, the chosen rate in `shipping_cost`, its amount in
`total_details.amount_shipping` and `amount_total`, and the PaymentIntent charges that
total.
"""

from __future__ import annotations

import re
from typing import Any

from . import shapes
from .amounts import check_step
from .engine import Engine
from .params import (
    StripeError,
    check_known,
    get_bool,
    get_int,
    get_list,
    get_map,
    get_metadata,
    get_str,
    invalid,
    missing,
)

MAX_OPTIONS = 5
ADDRESS_KEYS = ("city", "country", "line1", "line2", "postal_code", "state")
RATE_DATA = frozenset(
    {
        "display_name",
        "fixed_amount",
        "delivery_estimate",
        "metadata",
        "tax_behavior",
        "tax_code",
        "type",
    }
)
UNITS = ("business_day", "day", "hour", "month", "week")
TEST_ADDRESS = {
    "line1": "510 Townsend St",
    "line2": None,
    "city": "San Francisco",
    "state": "CA",
    "postal_code": "94103",
}
TEST_PHONE = "+14155550100"


def session_fields(engine: Engine, params: dict[str, Any], currency: str) -> dict[str, Any]:
    """The session's shipping fields from the create parameters (rates stored as objects)."""
    fields: dict[str, Any] = {}
    collection = get_map(params, "shipping_address_collection")
    if collection:
        check_known(collection, frozenset({"allowed_countries"}))
        countries = get_list(collection, "allowed_countries")
        if not countries:
            raise missing("shipping_address_collection[allowed_countries]")
        for code in countries:
            if not isinstance(code, str) or not re.fullmatch(r"[A-Z]{2}", code):
                raise invalid(
                    "shipping_address_collection[allowed_countries]",
                    f"Invalid country code: {code!r} (two capital letters, ISO 3166-1)",
                )
        fields["shipping_address_collection"] = {"allowed_countries": countries}
    phone = get_map(params, "phone_number_collection")
    if phone:
        fields["phone_number_collection"] = {"enabled": bool(get_bool(phone, "enabled"))}
    options = get_list(params, "shipping_options")
    if len(options) > MAX_OPTIONS:
        raise invalid("shipping_options", f"You may pass at most {MAX_OPTIONS} shipping options.")
    fields["shipping_options"] = [
        _option(engine, entry, f"shipping_options[{i}]", currency)
        for i, entry in enumerate(options)
    ]
    return fields


def _option(engine: Engine, entry: Any, name: str, currency: str) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise invalid(name, f"Invalid object: {name} must be a hash")
    check_known(entry, frozenset({"shipping_rate", "shipping_rate_data"}))
    if get_str(entry, "shipping_rate", f"{name}[shipping_rate]"):
        raise StripeError(
            f"No such shipping rate: '{entry['shipping_rate']}' (the sandbox takes "
            "shipping_rate_data only)",
            status=404,
            code="resource_missing",
            param=f"{name}[shipping_rate]",
        )
    data = get_map(entry, "shipping_rate_data", f"{name}[shipping_rate_data]")
    if not data:
        raise missing(f"{name}[shipping_rate_data]")
    rate = _rate(data, f"{name}[shipping_rate_data]", currency)
    engine.store.put(rate)
    return {"shipping_amount": rate["fixed_amount"]["amount"], "shipping_rate": rate["id"]}


def _rate(data: dict[str, Any], name: str, currency: str) -> dict[str, Any]:
    check_known(data, RATE_DATA)
    get_str(data, "type", f"{name}[type]", choices=("fixed_amount",))
    display = get_str(data, "display_name", f"{name}[display_name]", required=True)
    if len(display) > 100:
        raise invalid(f"{name}[display_name]", "display_name must be at most 100 characters")
    fixed = get_map(data, "fixed_amount", f"{name}[fixed_amount]")
    if not fixed:
        raise missing(f"{name}[fixed_amount]")
    amount = get_int(fixed, "amount", f"{name}[fixed_amount][amount]", required=True, minimum=0)
    rate_currency = get_str(fixed, "currency", f"{name}[fixed_amount][currency]", required=True)
    if rate_currency.lower() != currency:
        raise invalid(
            f"{name}[fixed_amount][currency]",
            f"The shipping rate's currency ({rate_currency}) must be the session's ({currency}).",
        )
    check_step(amount, currency, f"{name}[fixed_amount][amount]")
    return {
        "active": True,
        "created": shapes.now(),
        "delivery_estimate": _estimate(data, f"{name}[delivery_estimate]"),
        "display_name": display,
        "fixed_amount": {"amount": amount, "currency": currency},
        "id": shapes.new_id("shr_"),
        "livemode": False,
        "metadata": get_metadata(data, "metadata", f"{name}[metadata]"),
        "object": "shipping_rate",
        "tax_behavior": get_str(data, "tax_behavior") or "unspecified",
        "tax_code": None,
        "type": "fixed_amount",
    }


def _estimate(data: dict[str, Any], name: str) -> dict[str, Any] | None:
    estimate = get_map(data, "delivery_estimate", name)
    if not estimate:
        return None
    check_known(estimate, frozenset({"minimum", "maximum"}))
    shown: dict[str, Any] = {"maximum": None, "minimum": None}
    for bound in estimate:
        part = get_map(estimate, bound, f"{name}[{bound}]")
        unit = get_str(part, "unit", f"{name}[{bound}][unit]", required=True, choices=UNITS)
        value = get_int(part, "value", f"{name}[{bound}][value]", required=True, minimum=1)
        shown[bound] = {"unit": unit, "value": value}
    return shown


# --- the buyer's choice -------------------------------------------------------------------


def choose(engine: Engine, session: dict[str, Any], choice: dict[str, Any]) -> None:
    """Apply the buyer's address and rate to a session being paid (the test address and
    the first rate unless `choice` gives `shipping_details` / `shipping_rate`); once. Bad
    choices are refused before anything changes."""
    if session.get("shipping_cost") is not None or session.get("collected_information"):
        return
    collection = session.get("shipping_address_collection")
    address = collection and _details(
        choice.get("shipping_details"), collection["allowed_countries"]
    )
    options = session.get("shipping_options") or []
    option = options and _option_chosen(options, choice.get("shipping_rate"))
    customer = shapes.customer_details(session["customer_email"])
    customer["phone"] = _phone(session, choice)
    if address:
        session["collected_information"] = {
            "business_name": None,
            "individual_name": None,
            "shipping_details": address,
        }
    if option:
        amount = option["shipping_amount"]
        session["shipping_cost"] = {
            "amount_subtotal": amount,
            "amount_tax": 0,
            "amount_total": amount,
            "shipping_rate": option["shipping_rate"],
        }
        session["total_details"]["amount_shipping"] = amount
        session["amount_total"] = session["amount_subtotal"] + amount
    session["customer_details"] = customer
    intent = engine.find("payment_intent", session["payment_intent"], "payment_intent")
    intent["amount"] = session["amount_total"]
    engine.store.dirty = True


def _phone(session: dict[str, Any], choice: dict[str, Any]) -> str | None:
    """The phone the buyer gave, when the session collects one (the test phone by default)."""
    if not (session.get("phone_number_collection") or {}).get("enabled"):
        return None
    phone = choice.get("phone")
    if phone is not None and (not isinstance(phone, str) or len(phone) > 40):
        raise invalid("phone", "phone must be a string of at most 40 characters")
    return phone.strip() if phone and phone.strip() else TEST_PHONE


def _option_chosen(options: list[dict[str, Any]], wanted: Any) -> dict[str, Any]:
    if wanted in (None, ""):
        return options[0]
    for option in options:
        if option["shipping_rate"] == wanted:
            return option
    raise invalid("shipping_rate", f"{wanted!r} is not one of this session's shipping options")


def _details(given: Any, allowed: list[str]) -> dict[str, Any]:
    if given in (None, ""):
        country = "US" if "US" in allowed else allowed[0]
        address = TEST_ADDRESS | {"country": country, "state": "CA" if country == "US" else None}
        return {"address": address, "name": "Sandbox Buyer"}
    if not isinstance(given, dict) or not isinstance(given.get("address"), dict):
        raise invalid("shipping_details", "shipping_details must be {name, address: {…}}")
    raw = given["address"]
    address = {key: _field(raw, key, f"shipping_details[address][{key}]") for key in ADDRESS_KEYS}
    name = _field(given, "name", "shipping_details[name]")
    for required, value in (("name", name), ("address][line1", address["line1"])):
        if not value:
            raise missing(f"shipping_details[{required}]")
    if address["country"] not in allowed:
        raise invalid(
            "shipping_details[address][country]",
            f"This session ships to {', '.join(allowed)} only, not {address['country']!r}.",
        )
    return {"address": address, "name": name}


def _field(source: dict[str, Any], key: str, name: str) -> str | None:
    value = source.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 300:
        raise invalid(name, f"{name} must be a string of at most 300 characters")
    return value.strip() or None
