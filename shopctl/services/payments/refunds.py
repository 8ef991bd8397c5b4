"""Operator refunds of paid orders, and the refund of a late payment whose stock is gone."""

from __future__ import annotations

from shopctl.config import Settings
from shopctl.db import write_transaction
from shopctl.errors import Conflict, NotFound, ShopError
from shopctl.models import Order, Payment
from shopctl.services.orders.lifecycle import PAID, REFUNDED, lock_order
from shopctl.services.payments import gateway
from shopctl.services.payments.handlers import Context, apply_refunded_total
from shopctl.services.payments.late_refunds import announce_refund, on_refund

__all__ = ["on_refund", "refund_order"]


def _refundable(order_id: str) -> tuple[Order, Payment]:
    order = Order.get_or_none(Order.id == order_id)
    if order is None:
        raise NotFound("Order not found")
    payment = Payment.get(Payment.order == order.id)
    if order.status == REFUNDED or payment.refunded_cents >= payment.amount_cents > 0:
        raise Conflict("Order is already fully refunded")
    if order.status != PAID:
        raise Conflict(f"Only paid orders can be refunded; this one is {order.status}")
    if not payment.payment_intent_id:
        raise ShopError("No Stripe PaymentIntent is known for this order; run payments reconcile")
    return order, payment


def refund_order(
    settings: Settings,
    order_id: str,
    *,
    amount: int | None = None,
    reason: str | None = None,
    actor: str = "cli",
) -> dict:
    """Refund a paid order at Stripe, fully or partly; a retry never refunds twice."""
    import stripe

    order, payment = _refundable(order_id)
    remaining = payment.amount_cents - payment.refunded_cents
    amount = remaining if amount is None else amount
    if not 0 < amount <= remaining:
        raise Conflict(f"Refund amount must be between 1 and {remaining} (cents not yet refunded)")
    params = {
        "payment_intent": payment.payment_intent_id,
        "amount": amount,
        "reason": "requested_by_customer",
        "metadata": {
            "orderId": order.id,
            "paymentId": payment.id,
            "note": (reason or "operator refund")[:200],
        },
    }
    key = f"refund:{payment.id}:{payment.refunded_cents}:{amount}"
    try:
        refund = gateway.create_refund(settings, params, key)
    except stripe.StripeError as exc:
        announce_refund(order.id, payment.id, amount, "failed")
        raise gateway.provider_error(exc) from None
    announce_refund(order.id, payment.id, amount, str(refund.status or "pending"))
    _record_refund(settings, order.id, payment.refunded_cents + amount, actor)
    return {
        "orderId": order.id,
        "paymentId": payment.id,
        "refundId": refund.id,
        "amountCents": amount,
        "refundedCents": payment.refunded_cents + amount,
    }


def _record_refund(settings: Settings, order_id: str, refunded_total: int, actor: str) -> None:
    with write_transaction():
        order = lock_order(order_id)
        payment = Payment.get(Payment.order == order_id)
        apply_refunded_total(Context(settings, {}, actor=actor), order, payment, refunded_total)
