"""`payments reconcile`: compare open payments with Stripe's sessions and charges, and
report (or apply) each difference."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from shopctl.config import Settings
from shopctl.db import write_transaction
from shopctl.models import Order, Payment, utcnow
from shopctl.services.orders.lifecycle import (
    CANCELED,
    EXPIRED,
    FAILED,
    PAID,
    PROCESSING,
    REFUNDED,
    UNPAID,
    lock_order,
)
from shopctl.services.payments import gateway, refund_ledger, verification
from shopctl.services.payments.handlers import Context
from shopctl.services.payments.refund_events import settle_refunds
from shopctl.services.payments.refunds import resume_pending, unanswered_refunds
from shopctl.services.payments.sessions import apply_stripe_state
from shopctl.services.payments.settle import accepted
from shopctl.services.payments.sync import RETENTION


@dataclass
class Discrepancy:
    order_id: str
    payment_id: str
    kind: str
    detail: str
    fix: str
    applied: bool = False
    stripe_refunded: int | None = None

    def as_json(self) -> dict:
        return {
            "orderId": self.order_id,
            "paymentId": self.payment_id,
            "kind": self.kind,
            "detail": self.detail,
            "fix": self.fix,
            "applied": self.applied,
        }


OPEN_STATUSES = (UNPAID, PROCESSING, EXPIRED, CANCELED, FAILED)


def _candidates(window: timedelta) -> list[tuple[Order, Payment]]:
    since = utcnow() - window
    query = (
        Payment.select(Payment, Order)
        .join(Order)
        .where(
            Payment.session_id.is_null(False)
            & (Order.created_at >= since)
            & Order.status.in_((*OPEN_STATUSES, PAID, REFUNDED))
        )
    )
    return [(payment.order, payment) for payment in query]


def _session_gap(order: Order, payment: Payment, session: dict) -> Discrepancy | None:
    paid = session.get("payment_status") == "paid"
    expected, _ = verification.expected_amount(order, session)  # goods + chosen shipping
    if session.get("amount_total") not in (None, expected):
        return Discrepancy(
            order.id,
            payment.id,
            "amount-mismatch",
            f"Stripe {session.get('amount_total')} vs ours {expected}",
            "investigate: the session does not match the order",
        )
    mismatched = paid and verification.mismatch(order, payment, session)
    if mismatched and verification.reviewed(_intent_of(session), session.get("id")):
        return None  # flagged already: listed with its settle command (flagged_payments)
    if paid and order.status in OPEN_STATUSES and payment.late_outcome is None:
        return Discrepancy(
            order.id,
            payment.id,
            "paid-at-stripe",
            f"paid at Stripe, {order.status} here",
            "shopctl payments reconcile --apply",
        )
    if session.get("status") == "expired" and order.status == UNPAID:
        return Discrepancy(
            order.id,
            payment.id,
            "expired-at-stripe",
            "session expired at Stripe, UNPAID here",
            "shopctl payments reconcile --apply",
        )
    return None


def _intent_of(session: dict) -> str | None:
    intent = session.get("payment_intent")
    return intent.get("id") if isinstance(intent, dict) else intent


def _refund_gap(settings: Settings, order: Order, payment: Payment) -> Discrepancy | None:
    if not payment.payment_intent_id or order.status not in (PAID, REFUNDED):
        return None
    intent = gateway.retrieve_payment_intent(settings, payment.payment_intent_id).to_dict()
    charge = intent.get("latest_charge")
    refunded = charge.get("amount_refunded") if isinstance(charge, dict) else None
    if isinstance(refunded, int) and refunded != payment.refunded_cents:
        return Discrepancy(
            order.id,
            payment.id,
            "refunds-differ",
            f"{refunded} refunded at Stripe, {payment.refunded_cents} here",
            "shopctl payments reconcile --apply",
            stripe_refunded=refunded,
        )
    return None


def _apply_refunds(settings: Settings, gap: Discrepancy, actor: str) -> None:
    """Every refund of the payment as Stripe has it now, then the total and status."""
    payment = Payment.get_by_id(gap.payment_id)
    # One page within the deadline: 100 is Stripe's largest, more than a payment's refunds.
    params = {"payment_intent": payment.payment_intent_id, "limit": 100}
    refunds = [refund.to_dict() for refund in gateway.list_refunds(settings, params).data]
    with write_transaction():
        order = lock_order(gap.order_id)
        payment = Payment.get_by_id(gap.payment_id)
        for refund in refunds:
            refund_ledger.record(order, payment, refund, actor)
        settle_refunds(Context(settings, {}, actor=actor), order, payment)


def _apply(settings: Settings, gap: Discrepancy, session: dict) -> None:
    actor = f"reconcile:{session.get('id')}"
    if gap.kind == "paid-at-stripe":
        apply_stripe_state(settings, "checkout.session.completed", session, actor)
    elif gap.kind == "expired-at-stripe":
        apply_stripe_state(settings, "checkout.session.expired", session, actor)
    elif gap.kind == "refunds-differ":
        _apply_refunds(settings, gap, actor)
    else:
        return
    gap.applied = True


def reconcile(
    settings: Settings, *, apply: bool = False, window: timedelta = RETENTION
) -> list[Discrepancy]:
    """Every difference between our recent payments and Stripe; `apply` fixes them."""
    import stripe

    found = []
    for order, payment in _candidates(window):
        try:
            session = gateway.retrieve_session(settings, payment.session_id).to_dict()
            gap = _session_gap(order, payment, session) or _refund_gap(settings, order, payment)
        except stripe.StripeError as exc:
            if not gateway.is_unknown(exc):
                raise _stopped(exc, found) from None
            found.append(_unknown_to_stripe(order, payment, exc))
            continue
        if gap is None:
            continue
        if apply:
            _apply(settings, gap, session)
        found.append(gap)
    found += _unanswered(settings, apply)
    try:
        found += flagged_payments(settings)
    except stripe.StripeError as exc:
        raise _stopped(exc, found) from None
    return found


def _unknown_fix(order: Order) -> str:
    """What to do about an order Stripe answers 404 for: nothing can be applied from Stripe."""
    account = "check that STRIPE_SECRET_KEY is the Stripe account that"
    if order.status == UNPAID:
        return (
            f"{account} made its session; if it is, shopctl orders cancel {order.id} "
            "(a payment that still arrives is a late payment)"
        )
    if order.status in (PAID, REFUNDED):
        return f"{account} took the payment, and look the payment up in its Dashboard"
    return f"{account} made its session; nothing to apply here while no money was taken"


def _unknown_to_stripe(order: Order, payment: Payment, exc) -> Discrepancy:
    """An order Stripe answers 404 for (a changed key or account): listed, never applied."""
    return Discrepancy(
        order.id,
        payment.id,
        "unknown-to-stripe",
        f"Stripe does not know this order's payment ({gateway.describe(exc)}); {order.status} here",
        _unknown_fix(order),
    )


def _stopped(exc, found: list[Discrepancy]) -> Exception:
    """The Stripe failure that ended a run, saying how far it got."""
    error = gateway.provider_error(exc)
    if found:
        applied = sum(gap.applied for gap in found)
        what = "could not be reached" if gateway.is_unreachable(exc) else "refused a call"
        error.message = (
            f"Stripe {what} ({gateway.describe(exc)}); stopped after {len(found)} "
            f"difference(s), {applied} applied; rerunning is safe"
        )
    return error


def _unanswered(settings: Settings, apply: bool) -> list[Discrepancy]:
    """Operator refunds whose Stripe answer never came: asked again with the same key."""
    found = []
    for row in unanswered_refunds():
        gap = Discrepancy(
            row.order_id,
            row.payment_id,
            "refund-unanswered",
            f"refund {row.id} of {row.amount_cents} reserved, Stripe's answer never came",
            "shopctl payments reconcile --apply",
        )
        if apply:
            after = resume_pending(settings, row.id)
            gap.applied = after is not None and after.stripe_refund_id is not None
        found.append(gap)
    return found


def flagged_payments(settings: Settings) -> list[Discrepancy]:
    """Money we did not accept (verification.py), each with the command that settles it."""
    found = []
    for review in verification.open_reviews():
        money = f"{review.amount_cents} {review.currency or '?'}"
        ids = ", ".join(i for i in (review.session_id, review.payment_intent_id) if i)
        detail = f"flagged: {review.reason} (arrived: {money}; {ids or 'no ids'})"
        dismiss = f'shopctl payments settle {review.order_id} --dismiss --note "…"'
        captured = 0 if accepted(review) else _captured(settings, review.payment_intent_id)
        if accepted(review):
            detail, fix = detail + "; its PaymentIntent is the order's accepted payment", dismiss
        elif captured:
            detail += f"; {captured} captured at Stripe"
            fix = f"shopctl payments settle {review.order_id} --refund"
        else:
            detail, fix = detail + "; nothing captured at Stripe", dismiss
        found.append(Discrepancy(review.order_id, review.payment_id, "flagged", detail, fix))
    return found


def _captured(settings: Settings, intent_id: str | None) -> int:
    """What Stripe holds on a PaymentIntent (0 when there is none, or it took nothing)."""
    import stripe

    if not intent_id:
        return 0
    try:
        intent = gateway.retrieve_payment_intent(settings, intent_id).to_dict()
    except stripe.InvalidRequestError:
        return 0
    charge = intent.get("latest_charge")
    if intent.get("status") != "succeeded" or not isinstance(charge, dict):
        return 0
    return max(0, (charge.get("amount_captured") or 0) - (charge.get("amount_refunded") or 0))
