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
from shopctl.services.payments import gateway
from shopctl.services.payments.handlers import Context, apply_refunded_total
from shopctl.services.payments.sessions import apply_stripe_state
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
            & Order.status.in_((*OPEN_STATUSES, PAID))
        )
    )
    return [(payment.order, payment) for payment in query]


def _session_gap(order: Order, payment: Payment, session: dict) -> Discrepancy | None:
    paid = session.get("payment_status") == "paid"
    if session.get("amount_total") not in (None, payment.amount_cents):
        return Discrepancy(
            order.id,
            payment.id,
            "amount-mismatch",
            f"Stripe {session.get('amount_total')} vs ours {payment.amount_cents}",
            "investigate: the session does not match the order",
        )
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


def _refund_gap(settings: Settings, order: Order, payment: Payment) -> Discrepancy | None:
    if not payment.payment_intent_id or order.status not in (PAID, REFUNDED):
        return None
    intent = gateway.retrieve_payment_intent(settings, payment.payment_intent_id).to_dict()
    charge = intent.get("latest_charge")
    refunded = charge.get("amount_refunded") if isinstance(charge, dict) else None
    if isinstance(refunded, int) and refunded > payment.refunded_cents:
        return Discrepancy(
            order.id,
            payment.id,
            "refunded-at-stripe",
            f"{refunded} refunded at Stripe, {payment.refunded_cents} here",
            "shopctl payments reconcile --apply",
            stripe_refunded=refunded,
        )
    return None


def _apply(settings: Settings, gap: Discrepancy, session: dict) -> None:
    actor = f"reconcile:{session.get('id')}"
    if gap.kind == "paid-at-stripe":
        apply_stripe_state(settings, "checkout.session.completed", session, actor)
    elif gap.kind == "expired-at-stripe":
        apply_stripe_state(settings, "checkout.session.expired", session, actor)
    elif gap.kind == "refunded-at-stripe":
        with write_transaction():
            order = lock_order(gap.order_id)
            payment = Payment.get_by_id(gap.payment_id)
            context = Context(settings, {}, actor=actor)
            apply_refunded_total(context, order, payment, gap.stripe_refunded)
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
            raise _stopped(exc, found) from None
        if gap is None:
            continue
        if apply:
            _apply(settings, gap, session)
        found.append(gap)
    return found


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
