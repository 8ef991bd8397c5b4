"""Refunds followed to their end: the refund events' handlers and what a refund moves.

Stripe reports a refund with `refund.created`, `refund.updated`, `refund.failed` and
`charge.refund.updated` (the refund object), and with `charge.refunded` (the charge,
whose `amount_refunded` counts pending and succeeded refunds). Dashboard refunds carry
none of our metadata: they are matched by their PaymentIntent. Each refund is a row
(refund_ledger.py); the payment's refunded total is the sum of its pending and
succeeded refunds. A full total moves a paid order to REFUNDED; a refund that fails or
is canceled afterwards gives its amount back and moves the order back to PAID.

Only refunds of the payment we accepted count: a refund of money we flagged instead
(verification.py) settles that review, and never touches the order.
"""

from __future__ import annotations

from shopctl.models import Order, Payment, PaymentReview, Refund, utcnow
from shopctl.services.orders.lifecycle import PAID, REFUNDED, rereserve_stock
from shopctl.services.payments import refund_ledger, verification
from shopctl.services.payments.handlers import (
    LATE,
    Context,
    _id,
    _move,
    _set_late,
    claim,
    flag_payment,
    handles,
)


@handles("charge.refunded")
def charge_refunded(ctx: Context) -> None:
    charge = ctx.obj
    intent = _id(charge.get("payment_intent"))
    found = claim(ctx, intent_id=intent)
    if found is None or not _of_accepted_payment(ctx, found[1], intent):
        return
    order, payment = found
    refund_ledger.record_charge(order, payment, charge, ctx.actor)
    settle_refunds(ctx, order, payment)


@handles(*refund_ledger.REFUND_EVENTS)
def refund_changed(ctx: Context) -> None:
    refund = ctx.obj
    intent = _id(refund.get("payment_intent"))
    found = claim(ctx, intent_id=intent)
    if found is None or not _of_accepted_payment(ctx, found[1], intent):
        return
    order, payment = found
    row = refund_ledger.record(order, payment, refund, ctx.actor)
    settle_refunds(ctx, order, payment, row)


def _of_accepted_payment(ctx: Context, payment: Payment, intent_id: str | None) -> bool:
    """A refund counts for the order only if it refunds the PaymentIntent we accepted."""
    if intent_id and intent_id == payment.payment_intent_id:
        return True
    settled = _settle_review(intent_id, ctx)
    ctx.outcome = (
        f"refund of PaymentIntent {intent_id}, not the order's accepted payment"
        + (": its review is settled" if settled else "")
    )[:2000]
    ctx.flush()
    return False


def _settle_review(intent_id: str | None, ctx: Context) -> bool:
    """Money we flagged, refunded at Stripe (our settle command or the Dashboard)."""
    if not intent_id:
        return False
    obj = ctx.obj
    if obj.get("object") == "charge":
        done = obj.get("refunded") is True
    else:
        done = obj.get("status") in ("pending", "succeeded")
    if not done:
        return False
    changed = (
        PaymentReview.update(
            status=verification.REFUNDED,
            settled_by=ctx.actor[:255],
            settled_at=utcnow(),
            note="refunded at Stripe",
        )
        .where(
            (PaymentReview.payment_intent_id == intent_id)
            & (PaymentReview.status == verification.OPEN)
        )
        .execute()
    )
    return changed > 0


def settle_refunds(
    ctx: Context, order: Order, payment: Payment, changed: Refund | None = None
) -> None:
    """The refunded total from the refund rows, and the order's status from it.

    Also called outside a handler (operator refund, reconcile): it writes what it staged.
    """
    total = min(refund_ledger.counted_total(payment.id), payment.amount_cents)
    if total != payment.refunded_cents:
        ctx.stage(payment, refunded_cents=total)
        ctx.note(f"payment {payment.id}: refunded {total} of {payment.amount_cents}")
    if total >= payment.amount_cents > 0 and order.status in (PAID, *LATE):
        _move(ctx, order, payment, REFUNDED, "refunded at Stripe", REFUNDED)
        if payment.late_outcome == "refund_pending":
            _set_late(ctx, payment, "refunded")
    elif total < payment.amount_cents and order.status == REFUNDED:
        _refund_undone(ctx, order, payment, changed)
    ctx.flush()


def _refund_undone(ctx: Context, order: Order, payment: Payment, row: Refund | None) -> None:
    """A refund failed or was canceled: the order is paid again, its goods still held."""
    left = payment.amount_cents - payment.refunded_cents
    what = "a refund"
    if row is not None and row.status in (refund_ledger.FAILED, refund_ledger.CANCELED):
        what = f"refund {row.stripe_refund_id or row.id} {row.status.lower()}"
        if row.failure_reason:
            what += f" ({row.failure_reason})"
    if order.stock_released and not rereserve_stock(order, "refund-failed"):
        flag_payment(
            ctx,
            order,
            payment,
            f"{what}: {left} is paid again but the order's stock is gone; refund it again",
        )
        return
    _move(ctx, order, payment, PAID, f"{what}; {left} refundable again", PAID)
