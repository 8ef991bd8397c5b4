"""Settling payments flagged for review (verification.py): `shopctl payments settle`.

Flagged money is money Stripe holds that we did not accept for the order. It is settled
one of two ways: refunded in full at Stripe (the PaymentIntent named in the review; the
refund carries no `paymentId`, so it never counts as a refund of the order's payment),
or dismissed with a note once an operator has checked that nothing needs to go back
(e.g. the event was forged and nothing was captured).
"""

from __future__ import annotations

from shopctl.config import Settings
from shopctl.db import write_transaction
from shopctl.errors import Conflict, InvalidInput, PaymentProviderError
from shopctl.models import Order, Payment, PaymentReview, utcnow
from shopctl.services.orders.lifecycle import PAID, REFUNDED
from shopctl.services.payments import gateway, verification


def settle_reviews(
    settings: Settings, order_id: str, *, refund: bool, note: str | None, actor: str = "cli"
) -> list[dict]:
    """Refund (or dismiss) every open review of the order; the settled reviews."""
    reviews = verification.open_reviews(order_id)
    if not reviews:
        raise Conflict(f"Order {order_id} has no payment flagged for review")
    if not refund and not (note and note.strip()):
        raise InvalidInput([{"path": "note", "message": "say why the review is dismissed"}])
    settled = []
    for review in reviews:
        if refund:
            stripe_refund = _refund(settings, review)
            status, text = verification.REFUNDED, f"refunded at Stripe: {stripe_refund}"
        else:
            status, text = verification.DISMISSED, note.strip()
        with write_transaction():
            PaymentReview.update(
                status=status, note=text[:2000], settled_by=actor[:255], settled_at=utcnow()
            ).where(
                (PaymentReview.id == review.id) & (PaymentReview.status == verification.OPEN)
            ).execute()
        settled.append(verification.review_json(PaymentReview.get_by_id(review.id)))
    return settled


def accepted(review: PaymentReview) -> bool:
    """The review's PaymentIntent became the order's accepted payment afterwards (e.g. a
    forged event named it before the real one paid the order)."""
    payment = Payment.get_by_id(review.payment_id)
    order = Order.get_by_id(review.order_id)
    return review.payment_intent_id == payment.payment_intent_id and order.status in (
        PAID,
        REFUNDED,
    )


def _refund(settings: Settings, review: PaymentReview) -> str:
    import stripe

    if not review.payment_intent_id:
        raise Conflict(
            f"Review {review.id} names no PaymentIntent: nothing to refund at Stripe; "
            "check the Dashboard, then settle it with --dismiss --note"
        )
    if accepted(review):
        raise Conflict(
            f"{review.payment_intent_id} is the payment the order accepted since; refund it "
            "with `shopctl orders refund`, or settle the review with --dismiss --note"
        )
    params = {
        "payment_intent": review.payment_intent_id,
        "reason": "requested_by_customer",
        "metadata": {"orderId": review.order_id, "reviewId": review.id, "reason": "not accepted"},
    }
    try:
        return gateway.create_refund(settings, params, f"review-refund:{review.id}").id
    except stripe.InvalidRequestError as exc:
        if getattr(exc, "code", None) == "charge_already_refunded":
            return "already refunded"
        raise PaymentProviderError(
            f"Stripe refused to refund {review.payment_intent_id} ({gateway.describe(exc)}); "
            "if nothing was captured, settle it with --dismiss --note"
        ) from None
    except stripe.StripeError as exc:
        raise gateway.provider_error(exc) from None
