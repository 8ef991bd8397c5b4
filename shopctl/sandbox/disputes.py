"""Disputes and Radar early fraud warnings, opened and moved by the control endpoints,
with the objects and events Stripe sends (the Dispute and Early Fraud Warning objects of
API version 2026-10-28, as stripe-python 16 types them).

* open: `charge.dispute.created`; a chargeback (not an inquiry, `warning_*`) also takes
  the money back at once, `charge.dispute.funds_withdrawn`. The charge becomes
  `disputed` and its early fraud warnings stop being actionable
  (`radar.early_fraud_warning.updated`).
* update (e.g. evidence submitted, `under_review`): `charge.dispute.updated` with
  `previous_attributes`; an inquiry that becomes a chargeback withdraws the money.
* close: `charge.dispute.closed`; a chargeback won gives the money back,
  `charge.dispute.funds_reinstated`.
"""

from __future__ import annotations

from typing import Any

from . import shapes
from .engine import AUTOMATIC, Engine
from .params import StripeError, invalid

REASONS = (
    "bank_cannot_process",
    "check_returned",
    "credit_not_processed",
    "customer_initiated",
    "debit_not_authorized",
    "duplicate",
    "fraudulent",
    "general",
    "incorrect_account_details",
    "insufficient_funds",
    "noncompliant",
    "product_not_received",
    "product_unacceptable",
    "subscription_canceled",
    "unrecognized",
)
OPEN_STATUSES = ("warning_needs_response", "warning_under_review", "needs_response", "under_review")
INQUIRY = ("warning_needs_response", "warning_under_review")
FRAUD_TYPES = (
    "card_never_received",
    "fraudulent_card_application",
    "made_with_counterfeit_card",
    "made_with_lost_card",
    "made_with_stolen_card",
    "misc",
    "unauthorized_use_of_card",
)
EVIDENCE_DAYS = 7
DISPUTE_FEE = 1500  # in the charge's currency's minor units, as Stripe's US fee
_EVIDENCE_FIELDS = (
    "access_activity_log",
    "appeal",
    "billing_address",
    "cancellation_policy",
    "cancellation_policy_disclosure",
    "cancellation_rebuttal",
    "customer_communication",
    "customer_email_address",
    "customer_name",
    "customer_purchase_ip",
    "customer_signature",
    "duplicate_charge_documentation",
    "duplicate_charge_explanation",
    "duplicate_charge_id",
    "product_description",
    "receipt",
    "refund_policy",
    "refund_policy_disclosure",
    "refund_refusal_explanation",
    "service_date",
    "service_documentation",
    "shipping_address",
    "shipping_carrier",
    "shipping_date",
    "shipping_documentation",
    "shipping_tracking_number",
    "uncategorized_file",
    "uncategorized_text",
)


def _choice(body: dict[str, Any], key: str, choices: tuple[str, ...], default: str) -> str:
    value = body.get(key, default)
    if not isinstance(value, str) or value not in choices:
        raise invalid(key, f"{key} must be one of {', '.join(choices)}")
    return value


def _positive_int(body: dict[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise invalid(key, f"{key} must be a positive integer")
    return value


def _paid_charge(engine: Engine, pid: str) -> dict[str, Any]:
    intent = engine.find("payment_intent", pid, "payment_intent", "intent")
    if intent["status"] != "succeeded" or not intent["latest_charge"]:
        raise StripeError(
            f"PaymentIntent {pid} has no successful charge to dispute.",
            code="payment_intent_unexpected_state",
            param="intent",
        )
    return engine.find("charge", intent["latest_charge"], "charge", "charge")


def dispute_object(
    charge: dict[str, Any], *, amount: int, reason: str, status: str, due_by: int
) -> dict[str, Any]:
    case_type = "inquiry" if status in INQUIRY else "chargeback"
    return {
        "id": shapes.new_id("du_"),
        "object": "dispute",
        "amount": amount,
        "balance_transactions": [],
        "charge": charge["id"],
        "created": shapes.now(),
        "currency": charge["currency"],
        "enhanced_eligibility_types": [],
        "evidence": {**dict.fromkeys(_EVIDENCE_FIELDS), "enhanced_evidence": {}},
        "evidence_details": {
            "due_by": due_by,
            "enhanced_eligibility": {},
            "has_evidence": False,
            "past_due": False,
            "submission_count": 0,
            "submission_method": "not_submitted",
        },
        "intended_submission_method": None,
        "is_charge_refundable": case_type == "inquiry",
        "livemode": False,
        "metadata": {},
        "network_reason_code": None,
        "payment_intent": charge["payment_intent"],
        "payment_method_details": {
            "card": {
                "brand": "visa",
                "case_type": case_type,
                "network": "visa",
                "network_reason_code": None,
            },
            "type": "card",
        },
        "reason": reason,
        "status": status,
    }


def _balance_transaction(dispute: dict[str, Any], sign: int) -> dict[str, Any]:
    """The money a chargeback takes (sign -1, with Stripe's fee) or gives back (+1)."""
    fee = DISPUTE_FEE if sign < 0 else 0
    what = "withdrawal" if sign < 0 else "reversal"
    return {
        "id": shapes.new_id("txn_"),
        "object": "balance_transaction",
        "amount": sign * dispute["amount"],
        "available_on": shapes.now(),
        "balance_type": "payments",
        "created": shapes.now(),
        "currency": dispute["currency"],
        "description": f"Chargeback {what} for {dispute['charge']}",
        "exchange_rate": None,
        "fee": fee,
        "fee_details": [
            {
                "amount": fee,
                "application": None,
                "currency": dispute["currency"],
                "description": "Dispute fee",
                "type": "stripe_fee",
            }
        ]
        if fee
        else [],
        "net": sign * dispute["amount"] - fee,
        "reporting_category": "dispute" if sign < 0 else "dispute_reversal",
        "source": dispute["id"],
        "status": "pending",
        "type": "adjustment",
    }


def open_dispute(engine: Engine, pid: str, body: dict[str, Any]) -> dict[str, Any]:
    """`{"reason", "amount", "status", "evidence_due_by"}`, all optional: a dispute of the
    PaymentIntent's charge (any amount: the shop must notice more than it was paid)."""
    charge = _paid_charge(engine, pid)
    due_by = _positive_int(body, "evidence_due_by")
    dispute = dispute_object(
        charge,
        amount=_positive_int(body, "amount") or charge["amount"],
        reason=_choice(body, "reason", REASONS, "fraudulent"),
        status=_choice(body, "status", OPEN_STATUSES, "needs_response"),
        due_by=due_by or shapes.now() + EVIDENCE_DAYS * 86400,
    )
    engine.store.order_keys[dispute["id"]] = engine.order_key(charge["id"])
    engine.store.put(dispute)
    charge["disputed"] = True
    engine.emit("charge.dispute.created", dispute, AUTOMATIC)
    if dispute["status"] not in INQUIRY:
        _withdraw(engine, dispute)
    _settle_warnings(engine, charge)
    return dispute


def _withdraw(engine: Engine, dispute: dict[str, Any]) -> None:
    dispute["balance_transactions"].append(_balance_transaction(dispute, -1))
    dispute["is_charge_refundable"] = False
    engine.store.dirty = True
    engine.emit("charge.dispute.funds_withdrawn", dispute, AUTOMATIC)


def update_dispute(engine: Engine, did: str, body: dict[str, Any]) -> dict[str, Any]:
    """`{"status"}`: an open dispute moves (e.g. `under_review` once evidence is in)."""
    dispute = _open(engine, did, "update")
    status = _choice(body, "status", OPEN_STATUSES, dispute["status"])
    previous = {"status": dispute["status"]}
    if status in ("under_review", "warning_under_review"):
        details = dispute["evidence_details"]
        previous["evidence_details"] = dict(details)
        details.update(
            has_evidence=True,
            submission_count=details["submission_count"] + 1,
            submission_method="manual",
        )
    escalated = dispute["status"] in INQUIRY and status not in INQUIRY
    dispute["status"] = status
    dispute["payment_method_details"]["card"]["case_type"] = (
        "inquiry" if status in INQUIRY else "chargeback"
    )
    engine.store.dirty = True
    engine.emit("charge.dispute.updated", dispute, AUTOMATIC, previous=previous)
    if escalated:
        _withdraw(engine, dispute)
    return dispute


def close_dispute(engine: Engine, did: str, body: dict[str, Any]) -> dict[str, Any]:
    """`{"outcome": "won" | "lost"}` for a chargeback, `"warning_closed"` for an inquiry."""
    dispute = _open(engine, did, "close")
    inquiry = dispute["status"] in INQUIRY
    choices = ("warning_closed",) if inquiry else ("won", "lost")
    outcome = _choice(body, "outcome", choices, choices[0])
    previous = {"status": dispute["status"]}
    dispute["status"] = outcome
    engine.store.dirty = True
    engine.emit("charge.dispute.closed", dispute, AUTOMATIC, previous=previous)
    if outcome == "won":
        dispute["balance_transactions"].append(_balance_transaction(dispute, +1))
        engine.emit("charge.dispute.funds_reinstated", dispute, AUTOMATIC)
    return dispute


def _open(engine: Engine, did: str, action: str) -> dict[str, Any]:
    dispute = engine.find("dispute", did, "dispute", "dispute")
    if dispute["status"] not in OPEN_STATUSES:
        raise StripeError(
            f"Dispute {did} is {dispute['status']}; only an open dispute can {action}.",
            code="dispute_unexpected_state",
            param="dispute",
        )
    return dispute


# --- early fraud warnings ----------------------------------------------------------------


def open_fraud_warning(engine: Engine, pid: str, body: dict[str, Any]) -> dict[str, Any]:
    """`{"fraud_type"}`?: the issuer reports the PaymentIntent's charge as likely fraud."""
    charge = _paid_charge(engine, pid)
    warning = {
        "id": shapes.new_id("issfr_"),
        "object": "radar.early_fraud_warning",
        "actionable": not charge["disputed"] and not charge["refunded"],
        "charge": charge["id"],
        "created": shapes.now(),
        "fraud_type": _choice(body, "fraud_type", FRAUD_TYPES, "made_with_stolen_card"),
        "livemode": False,
        "payment_intent": charge["payment_intent"],
    }
    engine.store.order_keys[warning["id"]] = engine.order_key(charge["id"])
    engine.store.put(warning)
    engine.emit("radar.early_fraud_warning.created", warning, AUTOMATIC)
    return warning


def _settle_warnings(engine: Engine, charge: dict[str, Any]) -> None:
    """A warning is actionable until its charge is disputed or fully refunded."""
    for warning in engine.store.all("radar.early_fraud_warning"):
        if warning["charge"] == charge["id"] and warning["actionable"]:
            warning["actionable"] = False
            engine.store.dirty = True
            engine.emit(
                "radar.early_fraud_warning.updated",
                warning,
                AUTOMATIC,
                previous={"actionable": True},
            )


def charge_refunded(engine: Engine, charge: dict[str, Any]) -> None:
    """Called by a refund: a charge refunded in full ends its warnings."""
    if charge["refunded"]:
        _settle_warnings(engine, charge)
