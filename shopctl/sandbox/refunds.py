"""Refunds against a charge or a PaymentIntent, full or partial, never more than was paid."""

from __future__ import annotations

from typing import Any

from . import shapes
from .amounts import check_step
from .engine import Engine, Origin
from .params import StripeError, check_known, get_int, get_metadata, get_str, invalid

REFUND_CREATE = frozenset(
    {
        "payment_intent",
        "charge",
        "amount",
        "reason",
        "metadata",
        "refund_application_fee",
        "reverse_transfer",
        "instructions_email",
        "currency",
        "customer",
        "origin",
    }
)
REASONS = ("duplicate", "fraudulent", "requested_by_customer")


def create_refund(engine: Engine, params: dict[str, Any], origin: Origin) -> dict[str, Any]:
    check_known(params, REFUND_CREATE)
    charge = _charge_to_refund(engine, params)
    remaining = charge["amount"] - charge["amount_refunded"]
    if remaining <= 0:
        raise StripeError(
            f"Charge {charge['id']} has already been refunded.",
            code="charge_already_refunded",
            param="charge",
        )
    amount = get_int(params, "amount", minimum=1)
    amount = remaining if amount is None else amount
    check_step(amount, charge["currency"], "amount")
    if amount > remaining:
        raise invalid(
            "amount",
            f"Refund amount ({_money(amount, charge)}) is greater than "
            f"unrefunded amount on charge ({_money(remaining, charge)})",
            None,
        )
    refund = shapes.refund(
        shapes.new_id("re_"),
        charge_obj=charge,
        amount=amount,
        reason=get_str(params, "reason", choices=REASONS),
        metadata=get_metadata(params),
    )
    engine.store.order_keys[refund["id"]] = engine.order_key(charge["id"])
    engine.store.put(refund)
    charge["amount_refunded"] += amount
    charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
    charge["refunds"]["data"].insert(0, dict(refund))
    engine.emit("charge.refunded", charge, origin)
    engine.emit("refund.created", refund, origin)
    return refund


def _charge_to_refund(engine: Engine, params: dict[str, Any]) -> dict[str, Any]:
    charge_id = get_str(params, "charge")
    intent_id = get_str(params, "payment_intent")
    if not charge_id and not intent_id:
        raise StripeError(
            "One of the following params should be provided for this request: "
            "payment_intent or charge.",
            code="parameter_missing",
            param="payment_intent",
        )
    if intent_id:
        intent = engine.find("payment_intent", intent_id, "payment_intent", "payment_intent")
        if intent["status"] != "succeeded" or not intent["latest_charge"]:
            raise StripeError(
                f"This PaymentIntent ({intent_id}) does not have a successful charge to refund.",
                param="payment_intent",
            )
        if charge_id and charge_id != intent["latest_charge"]:
            raise invalid(
                "charge", f"Charge {charge_id} does not belong to PaymentIntent {intent_id}.", None
            )
        charge_id = intent["latest_charge"]
    return engine.find("charge", charge_id, "charge", "charge")


def _money(amount: int, charge: dict[str, Any]) -> str:
    return f"{amount} {charge['currency']}"
