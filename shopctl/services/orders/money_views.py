"""How an order's refunds and payment reviews are shown (API, `orders show`).

The rows are written by the payments package (refund_ledger.py, verification.py); this
is only how they read, so orders can show them without importing payments.
"""

from __future__ import annotations

from collections.abc import Iterable

from shopctl.models import PaymentReview, Refund
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
