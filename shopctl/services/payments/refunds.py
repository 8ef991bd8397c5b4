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

A line refund (refund_lines.py) reserves its lines' quantities in step 1 and restocks
them once Stripe accepted it (step 3, or the refund's webhook); a refused one gives the
lines back. A request with an idempotency key finds its refund in step 1 instead.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from shopctl.config import Settings
from shopctl.db import is_postgres, write_transaction
from shopctl.errors import (
    Conflict,
    NotChargeable,
    NotFound,
    PaymentProviderError,
    ShopError,
    StripeUnreachable,
    Unprocessable,
)
from shopctl.models import Order, Payment, Refund, RefundLine, utcnow
from shopctl.money import refund_problem
from shopctl.services.orders.lifecycle import PAID, REFUNDED, lock_order
from shopctl.services.payments import gateway, refund_ledger, refund_lines
from shopctl.services.payments.handlers import Context
from shopctl.services.payments.late_refunds import announce_refund, on_refund
from shopctl.services.payments.refund_events import settle_refunds

__all__ = ["RefundAsk", "on_refund", "refund_order", "request_refund"]

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


def _reserve(order_id: str, ask: RefundAsk, actor: str) -> tuple[Order, Payment, Refund, bool]:
    """(order, payment, the refund row, whether it is new): a retried request with the
    same idempotency key finds its refund instead of reserving another."""
    with write_transaction():
        order, payment = _lock(order_id)
        if ask.idempotency_key and (earlier := _replay(order, ask)):
            return order, payment, earlier, False
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
        items, lines = {}, None
        if ask.lines is not None:
            items, lines = refund_lines.line_items(order, ask.lines)
        shipping = refund_lines.shipping_left(order) if ask.shipping else 0
        worth = refund_lines.value(items, lines or {}) + shipping
        itemized = lines is not None or ask.shipping
        amount = _amount(ask.amount, remaining, worth, itemized)
        if problem := refund_problem(amount, payment.currency):
            raise NotChargeable(f"The refund amount {problem}")
        row = refund_ledger.reserve(order, payment, amount, ask.reason, actor)
        if ask.idempotency_key or shipping:
            key = ask.idempotency_key
            Refund.update(
                idempotency_key=key,
                request_hash=ask.request_hash() if key else None,
                shipping_cents=shipping,
            ).where(Refund.id == row.id).execute()
        if lines is not None:
            refund_lines.take(order, row, items, lines, ask.restock)
        Payment.update(refunded_cents=refunded + amount).where(Payment.id == payment.id).execute()
        return order, payment, row, True


def _replay(order: Order, ask: RefundAsk) -> Refund | None:
    earlier = Refund.get_or_none(
        (Refund.order == order.id) & (Refund.idempotency_key == ask.idempotency_key)
    )
    if earlier is not None and earlier.request_hash != ask.request_hash():
        raise Unprocessable("Idempotency-Key was already used with a different request")
    return earlier


def _amount(asked: int | None, remaining: int, worth: int, itemized: bool) -> int:
    """The refund's amount: what was asked, else what the lines (and shipping) are
    worth, else all that is left; never more than is left, nor more than they are worth."""
    if not itemized:
        amount = remaining if asked is None else asked
        if not 0 < amount <= remaining:
            raise Conflict(
                f"Refund amount must be between 1 and {remaining} (cents not yet refunded)"
            )
        return amount
    if asked is None and worth > remaining:
        raise Conflict(
            f"This refund is worth {worth} cents but only {remaining} are left to refund; "
            "give the amount to refund for them"
        )
    amount = worth if asked is None else asked
    if not 0 < amount <= min(worth, remaining):
        raise Conflict(
            f"Refund amount must be between 1 and {min(worth, remaining)} cents "
            "(what the lines and shipping are worth and is not yet refunded)"
        )
    return amount


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


@dataclass(frozen=True)
class RefundAsk:
    """What an operator asks to refund: an amount, lines (item id → units), or both."""

    amount: int | None = None
    reason: str | None = None
    lines: dict[str, int] | None = None
    restock: bool = False
    idempotency_key: str | None = None
    shipping: bool = False  # also the order's shipping, once

    def request_hash(self) -> str:
        lines = sorted(self.lines.items()) if self.lines is not None else None
        asked = [self.amount, self.reason, lines, self.restock, self.shipping]
        return hashlib.sha256(json.dumps(asked).encode()).hexdigest()


def refund_order(
    settings: Settings,
    order_id: str,
    *,
    amount: int | None = None,
    reason: str | None = None,
    actor: str = "cli",
) -> dict:
    """Refund a paid order at Stripe, fully or partly; a retry never refunds twice."""
    return request_refund(settings, order_id, RefundAsk(amount, reason), actor)[0]


def request_refund(settings: Settings, order_id: str, ask: RefundAsk, actor: str):
    """(the refund as JSON, whether it is new). Lines are reserved with the refund and
    restocked only once Stripe accepted it (refund_lines.py). A retry with the same key
    answers the same refund, asking Stripe again only if its answer never came."""
    order, payment, row, created = _reserve(order_id, ask, actor)
    if created or (row.status == refund_ledger.PENDING and not row.stripe_refund_id):
        row = _ask_stripe(settings, order, payment, row, actor)
    return _result(order, payment, row), created


def _result(order: Order, payment: Payment, refund: Refund) -> dict:
    lines = RefundLine.select().where(RefundLine.refund == refund.id).order_by(RefundLine.id)
    return {
        "orderId": order.id,
        "paymentId": payment.id,
        "refundId": refund.stripe_refund_id,
        "id": refund.id,
        "status": refund.status,
        "amountCents": refund.amount_cents,
        "refundedCents": Payment.get_by_id(payment.id).refunded_cents,
        "shippingCents": Refund.get_by_id(refund.id).shipping_cents,
        "lines": [
            {
                "itemId": line.item_id,
                "quantity": line.quantity,
                "restock": line.restock,
                "restocked": line.restocked_at is not None,
            }
            for line in lines
        ],
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
            refund_lines.settle(Refund.get_by_id(refused[0]))
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
