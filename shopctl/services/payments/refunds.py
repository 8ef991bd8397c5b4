"""Operator refunds of paid orders, serialised per payment without a transaction open
across the Stripe call.

1. Reserve: under the order's and the payment's row locks, check what is left to refund
   (the payment minus its pending and succeeded refunds), insert the refund as a PENDING
   row without a Stripe id, and commit. A second refund of the same payment waits for the
   lock, then sees the amount reserved.
2. Ask Stripe, with an idempotency key derived from the row (`refund:<row id>`) and the
   row's id in the refund's metadata, so a retry never refunds twice and the refund's
   webhooks find the row even before step 3.
3. Record Stripe's id and status on the row (a pending refund stays PENDING until its
   events say how it ended). If Stripe refused, the row is FAILED and nothing is
   reserved any more; if Stripe could not be reached, the row stays PENDING (the refund
   may have happened) until its webhook or `payments reconcile --apply`, which asks
   again with the same key, settles it.
"""

from __future__ import annotations

from shopctl.config import Settings
from shopctl.db import is_postgres, write_transaction
from shopctl.errors import (
    Conflict,
    NotChargeable,
    NotFound,
    PaymentProviderError,
    ShopError,
    StripeUnreachable,
)
from shopctl.models import Order, Payment, Refund, utcnow
from shopctl.money import refund_problem
from shopctl.services.orders.lifecycle import PAID, REFUNDED, lock_order
from shopctl.services.payments import gateway, refund_ledger
from shopctl.services.payments.handlers import Context
from shopctl.services.payments.late_refunds import announce_refund, on_refund
from shopctl.services.payments.refund_events import settle_refunds

__all__ = ["on_refund", "refund_order"]

# Stripe answered, and said no: nothing was refunded. Anything else (no answer, a 5xx, a
# timeout) leaves the refund unknown until Stripe tells.
REFUSED = ("InvalidRequestError", "CardError", "AuthenticationError", "PermissionError")


def _lock(order_id: str) -> tuple[Order, Payment]:
    order = lock_order(order_id)
    if order is None:
        raise NotFound("Order not found")
    query = Payment.select().where(Payment.order == order.id)
    payment = (query.for_update() if is_postgres() else query).get()
    return order, payment


def _reserve(
    order_id: str, amount: int | None, reason: str | None, actor: str
) -> tuple[Order, Payment, Refund]:
    with write_transaction():
        order, payment = _lock(order_id)
        refunded = refund_ledger.counted_total(payment.id)
        if order.status == REFUNDED or refunded >= payment.amount_cents > 0:
            raise Conflict("Order is already fully refunded")
        if order.status != PAID:
            raise Conflict(f"Only paid orders can be refunded; this one is {order.status}")
        if not payment.payment_intent_id:
            raise ShopError(
                "No Stripe PaymentIntent is known for this order; run payments reconcile"
            )
        remaining = payment.amount_cents - refunded
        amount = remaining if amount is None else amount
        if not 0 < amount <= remaining:
            raise Conflict(
                f"Refund amount must be between 1 and {remaining} (cents not yet refunded)"
            )
        if problem := refund_problem(amount, payment.currency):
            raise NotChargeable(f"The refund amount {problem}")
        row = refund_ledger.reserve(order, payment, amount, reason, actor)
        Payment.update(refunded_cents=refunded + amount).where(Payment.id == payment.id).execute()
        return order, payment, row


def _params(order: Order, payment: Payment, row: Refund) -> dict:
    return {
        "payment_intent": payment.payment_intent_id,
        "amount": row.amount_cents,
        "reason": "requested_by_customer",
        "metadata": {
            "orderId": order.id,
            "paymentId": payment.id,
            "refundId": row.id,
            "note": (row.reason or "operator refund")[:200],
        },
    }


def refund_order(
    settings: Settings,
    order_id: str,
    *,
    amount: int | None = None,
    reason: str | None = None,
    actor: str = "cli",
) -> dict:
    """Refund a paid order at Stripe, fully or partly; a retry never refunds twice."""
    order, payment, row = _reserve(order_id, amount, reason, actor)
    refund = _ask_stripe(settings, order, payment, row, actor)
    return {
        "orderId": order.id,
        "paymentId": payment.id,
        "refundId": refund.stripe_refund_id,
        "id": refund.id,
        "status": refund.status,
        "amountCents": refund.amount_cents,
        "refundedCents": Payment.get_by_id(payment.id).refunded_cents,
    }


def _ask_stripe(settings: Settings, order: Order, payment: Payment, row: Refund, actor: str):
    import stripe

    try:
        answer = gateway.create_refund(settings, _params(order, payment, row), f"refund:{row.id}")
    except stripe.StripeError as exc:
        if type(exc).__name__ in REFUSED:
            announce_refund(order.id, payment.id, row.amount_cents, "failed")
            _record(settings, order.id, None, actor, refused=(row.id, gateway.describe(exc)))
            raise gateway.provider_error(exc) from None
        announce_refund(order.id, payment.id, row.amount_cents, "unknown")
        raise StripeUnreachable(
            f"Stripe could not be reached ({gateway.describe(exc)}); refund {row.id} stays "
            "PENDING until Stripe's webhook or `shopctl payments reconcile --apply` settles it"
        ) from None
    announce_refund(order.id, payment.id, row.amount_cents, str(answer.status or "pending"))
    return _record(settings, order.id, answer.to_dict(), actor) or Refund.get_by_id(row.id)


def _record(
    settings: Settings,
    order_id: str,
    refund: dict | None,
    actor: str,
    refused: tuple[str, str] | None = None,
) -> Refund | None:
    with write_transaction():
        order, payment = _lock(order_id)
        row = None
        if refund is not None:
            row = refund_ledger.record(order, payment, refund, actor)
        elif refused is not None:
            Refund.update(
                status=refund_ledger.FAILED, failure_reason=refused[1][:100], updated_at=utcnow()
            ).where((Refund.id == refused[0]) & Refund.stripe_refund_id.is_null()).execute()
        settle_refunds(Context(settings, {}, actor=actor), order, payment, row)
        return row


def resume_pending(settings: Settings, refund_id: str) -> Refund | None:
    """Ask Stripe again, with the same key, for a refund whose answer never came."""
    row = Refund.get_or_none(Refund.id == refund_id)
    if row is None or row.stripe_refund_id or row.status != refund_ledger.PENDING:
        return row
    order, payment = Order.get_by_id(row.order_id), Payment.get_by_id(row.payment_id)
    try:
        return _ask_stripe(settings, order, payment, row, row.actor)
    except PaymentProviderError:
        return Refund.get_by_id(refund_id)


def unanswered_refunds() -> list[Refund]:
    """Operator refunds reserved whose Stripe answer never came."""
    query = Refund.select().where(
        Refund.stripe_refund_id.is_null()
        & (Refund.status == refund_ledger.PENDING)
        & (Refund.actor != "stripe")
    )
    return list(query.order_by(Refund.created_at))
