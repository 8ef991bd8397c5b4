"""How an order's refunds, payment reviews, disputes and fraud warnings are shown (API,
`orders show`, `disputes`).

The rows are written by the payments package (refund_ledger.py, verification.py,
disputes.py); this is only how they read, so orders can show them without importing
payments.
"""

from __future__ import annotations

from collections.abc import Iterable

from shopctl.models import Dispute, FraudWarning, PaymentReview, Refund
from shopctl.services.common import iso


def refund_json(row: Refund) -> dict:
    return {
        "id": row.id,
        "stripeRefundId": row.stripe_refund_id,
        "amountCents": row.amount_cents,
        "status": row.status,
        "reason": row.reason,
        "failureReason": row.failure_reason,
        "createdAt": iso(row.created_at),
        "updatedAt": iso(row.updated_at),
    }


def refunds_by_order(order_ids: Iterable[str]) -> dict[str, list[dict]]:
    """Each order's refunds, oldest first, in one query."""
    found: dict[str, list[dict]] = {order_id: [] for order_id in order_ids}
    if found:
        rows = Refund.select().where(Refund.order.in_(list(found)))
        for row in rows.order_by(Refund.created_at, Refund.id):
            found[row.order_id].append(refund_json(row))
    return found


def review_json(review: PaymentReview) -> dict:
    return {
        "id": review.id,
        "status": review.status,
        "reason": review.reason,
        "eventId": review.event_id,
        "amountCents": review.amount_cents,
        "currency": review.currency,
        "sessionId": review.session_id,
        "paymentIntentId": review.payment_intent_id,
        "note": review.note,
        "settledBy": review.settled_by,
        "settledAt": iso(review.settled_at),
        "createdAt": iso(review.created_at),
    }


def reviews_of(order_id: str) -> list[dict]:
    rows = PaymentReview.select().where(PaymentReview.order == order_id)
    return [review_json(row) for row in rows.order_by(PaymentReview.created_at, PaymentReview.id)]


def dispute_json(row: Dispute) -> dict:
    return {
        "id": row.id,
        "status": row.status,
        "reason": row.reason,
        "amountCents": row.amount_cents,
        "currency": row.currency,
        "evidenceDueBy": iso(row.evidence_due_by),
        "fundsWithdrawnCents": row.funds_withdrawn_cents,
        "fundsReinstatedCents": row.funds_reinstated_cents,
        "problem": row.problem,
        "chargeId": row.charge_id,
        "paymentIntentId": row.payment_intent_id,
        "orderId": row.order_id,
        "paymentId": row.payment_id,
        "lastEventId": row.last_event_id,
        "stripeCreatedAt": iso(row.stripe_created_at),
        "createdAt": iso(row.created_at),
        "updatedAt": iso(row.updated_at),
    }


def fraud_warning_json(row: FraudWarning) -> dict:
    return {
        "id": row.id,
        "fraudType": row.fraud_type,
        "actionable": row.actionable,
        "chargeId": row.charge_id,
        "paymentIntentId": row.payment_intent_id,
        "orderId": row.order_id,
        "stripeCreatedAt": iso(row.stripe_created_at),
        "createdAt": iso(row.created_at),
        "updatedAt": iso(row.updated_at),
    }


def disputes_of(order_id: str) -> tuple[list[dict], list[dict]]:
    """The order's disputes and early fraud warnings, oldest first."""
    disputes = Dispute.select().where(Dispute.order == order_id)
    warnings = FraudWarning.select().where(FraudWarning.order == order_id)
    return (
        [dispute_json(row) for row in disputes.order_by(Dispute.created_at, Dispute.id)],
        [
            fraud_warning_json(row)
            for row in warnings.order_by(FraudWarning.created_at, FraudWarning.id)
        ],
    )
