"""A payment that arrived for an order whose stock is gone is refunded at Stripe, once.

The refund is a follow-up of the event that decided it, run after that event's commit in
three steps, so no database thread or transaction waits on Stripe: read what to refund
(a short database step), ask Stripe (awaited on the API's event loop, or on the private
loop of `gateway.run` in the CLI, within STRIPE_TIMEOUT), record Stripe's answer (a short
database step). The idempotency key `late-refund:<payment id>` makes a retry (Stripe's
redelivery, `events replay`) ask for the same refund.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from shopctl.config import Settings
from shopctl.db import write_transaction
from shopctl.errors import ShopError
from shopctl.models import Payment, utcnow
from shopctl.services.orders.lifecycle import REFUNDED, lock_order, transition
from shopctl.services.payments import gateway, refund_ledger

# Metrics and logs register here at start-up (also through refunds.on_refund): called
# after each refund we ask Stripe for, with (order id, payment id, amount in minor units or
# None for the rest, status: Stripe's refund status, or "failed" when Stripe refused).
# Hooks must not raise.
RefundHook = Callable[[str, str, int | None, str], None]
REFUND_HOOKS: list[RefundHook] = []
RunDb = Callable[..., Awaitable]


def on_refund(hook: RefundHook) -> RefundHook:
    REFUND_HOOKS.append(hook)
    return hook


def announce_refund(order_id: str, payment_id: str, amount: int | None, status: str) -> None:
    for hook in REFUND_HOOKS:
        hook(order_id, payment_id, amount, status)


@dataclass(frozen=True)
class LateRefund:
    """The follow-up an event leaves when its late payment must go back (handlers.py)."""

    payment_id: str
    actor: str

    def run(self, settings: Settings) -> None:
        """For synchronous callers (CLI, cron, replay, sync): Stripe asked on the private
        event loop, this thread waiting at most STRIPE_TIMEOUT."""
        ask = _refund_to_ask(self.payment_id)
        if ask is not None:
            _record(ask, gateway.run(_ask_stripe(settings, ask)), self.actor)

    async def run_async(self, settings: Settings, run_db: RunDb) -> None:
        """For the API: each database step through `run_db`, Stripe awaited on the loop."""
        ask = await run_db(_refund_to_ask, self.payment_id)
        if ask is not None:
            refund = await _ask_stripe(settings, ask)
            await run_db(_record, ask, refund, self.actor)


@dataclass(frozen=True)
class _Ask:
    order_id: str
    payment_id: str
    params: dict


def _refund_to_ask(payment_id: str) -> _Ask | None:
    """What to ask Stripe for, or None once the late payment is refunded."""
    payment = Payment.get_by_id(payment_id)
    if payment.late_outcome != "refund_pending":
        return None
    if not payment.payment_intent_id:
        raise ShopError(f"Cannot refund late payment {payment_id}: no PaymentIntent known")
    metadata = {"orderId": payment.order_id, "paymentId": payment.id, "reason": "stock_unavailable"}
    params = {
        "payment_intent": payment.payment_intent_id,
        "reason": "requested_by_customer",
        "metadata": metadata,
    }
    return _Ask(payment.order_id, payment.id, params)


async def _ask_stripe(settings: Settings, ask: _Ask) -> dict:
    import stripe

    key = f"late-refund:{ask.payment_id}"
    try:
        refund = (await gateway.create_refund_async(settings, ask.params, key)).to_dict()
    except stripe.StripeError as exc:
        announce_refund(ask.order_id, ask.payment_id, None, "failed")
        raise gateway.provider_error(exc) from None
    announce_refund(ask.order_id, ask.payment_id, None, str(refund.get("status") or "pending"))
    return refund


def _record(ask: _Ask, refund: dict, actor: str) -> None:
    """Stripe's refund, and the order REFUNDED, unless another run recorded it first."""
    with write_transaction():
        order = lock_order(ask.order_id)
        payment = Payment.get_by_id(ask.payment_id)
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
        ).where(Payment.id == ask.payment_id).execute()
