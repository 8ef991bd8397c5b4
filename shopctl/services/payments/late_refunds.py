"""A payment that arrived for an order whose stock is gone is refunded at Stripe, once."""

from __future__ import annotations

from shopctl.config import Settings
from shopctl.db import write_transaction
from shopctl.errors import ShopError
from shopctl.models import Payment, utcnow
from shopctl.services.orders.lifecycle import REFUNDED, lock_order, transition
from shopctl.services.payments import gateway, refund_ledger


def refund_late_payment(settings: Settings, payment_id: str, *, actor: str) -> None:
    """Money arrived for an order whose stock is gone: give it back, once per payment."""
    import stripe

    payment = Payment.get_by_id(payment_id)
    if payment.late_outcome != "refund_pending":
        return
    if not payment.payment_intent_id:
        raise ShopError(f"Cannot refund late payment {payment_id}: no PaymentIntent known")
    params = {
        "payment_intent": payment.payment_intent_id,
        "reason": "requested_by_customer",
        "metadata": {
            "orderId": payment.order_id,
            "paymentId": payment.id,
            "reason": "stock_unavailable",
        },
    }
    try:
        refund = gateway.create_refund(settings, params, f"late-refund:{payment.id}").to_dict()
    except stripe.StripeError as exc:
        raise gateway.provider_error(exc) from None
    with write_transaction():
        order = lock_order(payment.order_id)
        payment = Payment.get_by_id(payment_id)
        refund_ledger.record(order, payment, refund, actor)
        if payment.late_outcome != "refund_pending":
            return
        transition(
            order,
            REFUNDED,
            reason="late payment refunded: stock_unavailable",
            actor=actor,
            payment_status=REFUNDED,
        )
        Payment.update(
            late_outcome="refunded", refunded_cents=payment.amount_cents, updated_at=utcnow()
        ).where(Payment.id == payment_id).execute()
