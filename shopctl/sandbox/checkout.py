"""Checkout Sessions: creation (with Stripe's parameter rules), expiry and the buyer's outcomes."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from . import shapes, shipping
from .amounts import check_session_total, check_step
from .engine import AUTOMATIC, Engine, Origin, check_currency
from .params import (
    StripeError,
    check_known,
    get_int,
    get_list,
    get_map,
    get_metadata,
    get_str,
    invalid,
    missing,
)

SESSION_CREATE = frozenset(
    {
        "adaptive_pricing",
        "after_expiration",
        "allow_promotion_codes",
        "billing_address_collection",
        "cancel_url",
        "client_reference_id",
        "consent_collection",
        "currency",
        "custom_fields",
        "custom_text",
        "customer",
        "customer_creation",
        "customer_email",
        "customer_update",
        "discounts",
        "expires_at",
        "invoice_creation",
        "line_items",
        "locale",
        "metadata",
        "mode",
        "payment_intent_data",
        "payment_method_collection",
        "payment_method_configuration",
        "payment_method_options",
        "payment_method_types",
        "phone_number_collection",
        "saved_payment_method_options",
        "shipping_address_collection",
        "shipping_options",
        "submit_type",
        "success_url",
        "tax_id_collection",
        "ui_mode",
    }
)
INTENT_DATA = frozenset(
    {
        "metadata",
        "description",
        "receipt_email",
        "capture_method",
        "setup_future_usage",
        "statement_descriptor",
        "statement_descriptor_suffix",
        "shipping",
        "transfer_group",
    }
)
MIN_LIFETIME, MAX_LIFETIME = 30 * 60, 24 * 60 * 60
OUTCOMES = ("succeeded", "declined", "async_pending", "async_succeeded", "async_failed")


def create_session(
    engine: Engine, params: dict[str, Any], origin: Origin, base_url: str
) -> dict[str, Any]:
    check_known(params, SESSION_CREATE)
    mode = get_str(params, "mode", required=True, choices=("payment", "setup", "subscription"))
    if mode != "payment":
        raise invalid("mode", "The sandbox supports only mode=payment.")
    get_str(params, "ui_mode", choices=("hosted", "hosted_page"))
    items = _line_items(params)
    created = shapes.now()
    fields = {
        "metadata": get_metadata(params),
        "client_reference_id": _short(params, "client_reference_id", 200),
        "customer_email": _email(params),
        "success_url": _url(params, "success_url"),
        "cancel_url": _url(params, "cancel_url"),
        "created": created,
    }
    expires_at = _expires_at(params, created)
    intent_data = _intent_data(params)
    amount = sum(item["amount_total"] for item in items)
    currency = items[0]["currency"]
    check_session_total(amount, currency)
    fields.update(shipping.session_fields(engine, params, currency))
    sid = shapes.new_id("cs_test_a1", 56)
    intent = engine.new_intent(
        amount, currency, intent_data.pop("metadata"), intent_data, origin, session_id=sid
    )
    session = shapes.checkout_session(
        sid,
        amount=amount,
        currency=currency,
        expires_at=expires_at,
        url=f"{base_url}/checkout/pay/{sid}",
        payment_intent=intent["id"],
        fields=fields,
    )
    engine.store.line_items[sid] = items
    return engine.store.put(session)


def _line_items(params: dict[str, Any]) -> list[dict[str, Any]]:
    raw = get_list(params, "line_items")
    if not raw:
        raise missing("line_items")
    if len(raw) > 100:
        raise invalid(
            "line_items", "A Checkout Session in payment mode takes at most 100 line items."
        )
    items = [_line_item(entry, f"line_items[{i}]") for i, entry in enumerate(raw)]
    if len({item["currency"] for item in items}) > 1:
        raise invalid("line_items", "All line items must use the same currency.")
    return items


def _line_item(entry: Any, name: str) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise invalid(name, f"Invalid object: {name} must be a hash")
    check_known(
        entry,
        frozenset(
            {
                "price",
                "price_data",
                "quantity",
                "adjustable_quantity",
                "tax_rates",
                "dynamic_tax_rates",
            }
        ),
    )
    if get_str(entry, "price", f"{name}[price]"):
        raise StripeError(
            f"No such price: '{entry['price']}' (the sandbox takes price_data only)",
            status=404,
            code="resource_missing",
            param=f"{name}[price]",
        )
    price = get_map(entry, "price_data", f"{name}[price_data]")
    if not price:
        raise missing(f"{name}[price_data]")
    currency = check_currency(
        get_str(price, "currency", f"{name}[price_data][currency]", required=True),
        f"{name}[price_data][currency]",
    )
    unit_amount = _unit_amount(price, f"{name}[price_data]")
    check_step(unit_amount, currency, f"{name}[price_data][unit_amount]")
    product = get_map(price, "product_data", f"{name}[price_data][product_data]")
    if not product:
        raise missing(f"{name}[price_data][product_data]")
    title = get_str(product, "name", f"{name}[price_data][product_data][name]", required=True)
    quantity = get_int(entry, "quantity", f"{name}[quantity]", required=True, minimum=1)
    return shapes.line_item(currency, unit_amount, quantity, title, get_str(product, "description"))


def _unit_amount(price: dict[str, Any], name: str) -> int:
    amount = get_int(price, "unit_amount", f"{name}[unit_amount]", minimum=0)
    if amount is not None:
        return amount
    decimal = get_str(price, "unit_amount_decimal", f"{name}[unit_amount_decimal]")
    if decimal is None:
        raise missing(f"{name}[unit_amount]")
    whole = re.fullmatch(r"([0-9]{1,15})(\.0*)?", decimal)
    if whole is None:
        raise invalid(
            f"{name}[unit_amount_decimal]",
            "The sandbox takes whole-unit unit_amount_decimal values only.",
            "parameter_invalid_decimal",
        )
    return int(whole.group(1))


def _expires_at(params: dict[str, Any], created: int) -> int:
    expires_at = get_int(params, "expires_at")
    if expires_at is None:
        return created + MAX_LIFETIME
    if expires_at < created + MIN_LIFETIME:
        raise invalid(
            "expires_at",
            "The `expires_at` timestamp must be at least 30 minutes "
            "from Checkout Session creation.",
            None,
        )
    if expires_at > created + MAX_LIFETIME:
        raise invalid(
            "expires_at",
            "The `expires_at` timestamp must be less than 24 hours from Checkout Session creation.",
            None,
        )
    return expires_at


def _intent_data(params: dict[str, Any]) -> dict[str, Any]:
    data = get_map(params, "payment_intent_data")
    for key in data:
        if key not in INTENT_DATA:
            raise StripeError(
                f"Received unknown parameter: payment_intent_data[{key}]",
                code="parameter_unknown",
                param=f"payment_intent_data[{key}]",
            )
    return {
        "metadata": get_metadata(data, "metadata", "payment_intent_data[metadata]"),
        "description": get_str(data, "description", "payment_intent_data[description]"),
        "receipt_email": get_str(data, "receipt_email", "payment_intent_data[receipt_email]"),
    }


def _short(params: dict[str, Any], key: str, limit: int) -> str | None:
    value = get_str(params, key)
    if value is not None and len(value) > limit:
        raise invalid(key, f"Invalid {key}: must be at most {limit} characters")
    return value


def _email(params: dict[str, Any]) -> str | None:
    email = get_str(params, "customer_email")
    if email is not None and (email.count("@") != 1 or "." not in email.split("@")[1]):
        raise invalid("customer_email", f"Invalid email address: {email}", "email_invalid")
    return email


def _url(params: dict[str, Any], key: str) -> str | None:
    url = get_str(params, key)
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or len(url) > 5000:
        raise invalid(key, "Not a valid URL", "url_invalid")
    return url


# -- life cycle ---------------------------------------------------------------------------


def refresh(engine: Engine, session: dict[str, Any]) -> dict[str, Any]:
    """Expire an open session whose `expires_at` has passed (Stripe does it within minutes)."""
    if session["status"] == "open" and session["expires_at"] <= shapes.now():
        _expire(engine, session, AUTOMATIC)
    return session


def expire_due(engine: Engine) -> int:
    due = [
        s
        for s in engine.store.all("checkout.session")
        if s["status"] == "open" and s["expires_at"] <= shapes.now()
    ]
    for session in reversed(due):
        _expire(engine, session, AUTOMATIC)
    return len(due)


def expire_session(engine: Engine, sid: str, origin: Origin) -> dict[str, Any]:
    session = refresh(engine, engine.find("checkout.session", sid, "checkout.session", "session"))
    if session["status"] != "open":
        raise StripeError(
            'Only Checkout Sessions with a status in ["open"] can be expired. This Checkout '
            f'Session has a status of "{session["status"]}".',
            param="session",
        )
    return _expire(engine, session, origin)


def _expire(engine: Engine, session: dict[str, Any], origin: Origin) -> dict[str, Any]:
    intent = engine.store.get(session["payment_intent"], "payment_intent")
    if intent and intent["status"] in ("requires_payment_method", "requires_confirmation"):
        engine.cancel(intent, "abandoned", origin)
    session.update(status="expired", url=None)
    engine.store.dirty = True
    engine.emit("checkout.session.expired", session, origin)
    return session


def pay(
    engine: Engine, sid: str, outcome: str, origin: Origin = AUTOMATIC, choice: dict | None = None
) -> dict[str, Any]:
    """What the hosted page's buttons do: one buyer outcome applied to an open session;
    paying takes the buyer's shipping `choice` (shipping.py) first."""
    if outcome not in OUTCOMES:
        raise invalid("outcome", f"outcome must be one of {', '.join(OUTCOMES)}")
    session = refresh(engine, engine.find("checkout.session", sid, "checkout.session", "session"))
    intent = engine.find("payment_intent", session["payment_intent"], "payment_intent")
    pending = session["status"] == "complete" and intent["status"] == "processing"
    if outcome.startswith("async_") and outcome != "async_pending":
        if not pending:
            raise _state_error(session, "has no delayed payment waiting")
    elif session["status"] != "open":
        raise _state_error(session, f"is {session['status']}")
    if outcome in ("succeeded", "async_pending"):
        shipping.choose(engine, session, choice or {})
    _OUTCOME_STEPS[outcome](engine, session, intent, origin)
    return session


def _state_error(session: dict[str, Any], why: str) -> StripeError:
    return StripeError(
        f"Checkout Session {session['id']} {why}.",
        param="session",
        code="checkout_session_unexpected_state",
    )


def _complete(session: dict[str, Any], payment_status: str) -> None:
    session.update(
        status="complete",
        payment_status=payment_status,
        url=None,
        customer_details=session["customer_details"]
        or shapes.customer_details(session["customer_email"]),
    )


def _succeeded(
    engine: Engine, session: dict[str, Any], intent: dict[str, Any], origin: Origin
) -> None:
    engine.succeed(intent, origin, email=session["customer_email"])
    _complete(session, "paid")
    engine.emit("checkout.session.completed", session, origin)


def _declined(
    engine: Engine, session: dict[str, Any], intent: dict[str, Any], origin: Origin
) -> None:
    engine.decline(intent, origin)


def _async_pending(
    engine: Engine, session: dict[str, Any], intent: dict[str, Any], origin: Origin
) -> None:
    engine.start_processing(intent, origin)
    _complete(session, "unpaid")
    engine.emit("checkout.session.completed", session, origin)


def _async_succeeded(
    engine: Engine, session: dict[str, Any], intent: dict[str, Any], origin: Origin
) -> None:
    engine.succeed(intent, origin, email=session["customer_email"])
    session["payment_status"] = "paid"
    engine.emit("checkout.session.async_payment_succeeded", session, origin)


def _async_failed(
    engine: Engine, session: dict[str, Any], intent: dict[str, Any], origin: Origin
) -> None:
    engine.fail(
        intent,
        origin,
        {
            "type": "card_error",
            "code": "payment_intent_payment_attempt_failed",
            "decline_code": None,
            "message": "The delayed payment failed.",
            "param": None,
            "doc_url": "https://stripe.com/docs/error-codes/payment-intent-payment-attempt-failed",
        },
    )
    engine.emit("checkout.session.async_payment_failed", session, origin)


_OUTCOME_STEPS = {
    "succeeded": _succeeded,
    "declined": _declined,
    "async_pending": _async_pending,
    "async_succeeded": _async_succeeded,
    "async_failed": _async_failed,
}
