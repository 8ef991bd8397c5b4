"""Refunds against a charge or a PaymentIntent, full or partial, never more than was paid."""

from __future__ import annotations

from typing import Any

from . import disputes, shapes
from .amounts import check_step
from .engine import AUTOMATIC, Engine, Origin
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


def create_refund(
    engine: Engine, params: dict[str, Any], origin: Origin, status: str = "succeeded"
) -> dict[str, Any]:
    """`status` is how new refunds start: `succeeded`, or `pending` (the sandbox's
    `refund_status` setting) until `/_sandbox/refunds/{id}/fail` or `…/succeed`."""
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
    refund["status"] = status
    engine.store.order_keys[refund["id"]] = engine.order_key(charge["id"])
    engine.store.put(refund)
    charge["amount_refunded"] += amount
    charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
    charge["refunds"]["data"].insert(0, dict(refund))
    engine.emit("charge.refunded", charge, origin)
    engine.emit("refund.created", refund, origin)
    disputes.charge_refunded(engine, charge)
    return refund


def finish_refund(engine: Engine, rid: str, outcome: str, reason: str | None) -> dict[str, Any]:
    """A pending refund ends: `succeeded`, or `failed` (its amount goes back to the charge's
    refundable amount), with the events Stripe sends: `refund.updated`, then for a failure
    `refund.failed`, and `charge.refund.updated` (the refund object, as its name says)."""
    refund = engine.find("refund", rid, "refund", "refund")
    if refund["status"] != "pending":
        raise StripeError(
            f"Refund {rid} is {refund['status']}; only a pending refund can {outcome[:-2]}.",
            code="refund_unexpected_state",
            param="refund",
        )
    refund["status"] = outcome
    if outcome == "failed":
        refund["failure_reason"] = reason or "expired_or_canceled_card"
        refund["failure_balance_transaction"] = shapes.new_id("txn_")
        charge = engine.find("charge", refund["charge"], "charge", "charge")
        charge["amount_refunded"] -= refund["amount"]
        charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
    engine.store.dirty = True
    _sync_charge_list(engine, refund)
    engine.emit("refund.updated", refund, AUTOMATIC, previous={"status": "pending"})
    if outcome == "failed":
        engine.emit("refund.failed", refund, AUTOMATIC)
    engine.emit("charge.refund.updated", refund, AUTOMATIC, previous={"status": "pending"})
    return refund


def _sync_charge_list(engine: Engine, refund: dict[str, Any]) -> None:
    charge = engine.find("charge", refund["charge"], "charge", "charge")
    listed = charge["refunds"]["data"]
    charge["refunds"]["data"] = [dict(refund) if r["id"] == refund["id"] else r for r in listed]


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
