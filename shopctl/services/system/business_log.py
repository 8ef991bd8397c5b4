"""One log line per business event: an order transition (payment applied, late payment,
refund, expiry, cancel), a refund asked of Stripe, a webhook's outcome, a throttled login,
a stock-out. Registered at the lower layers' hooks once per process, by the app factory
and by every command that opens the database; the lines go to the `shopctl.events` logger
(see shopctl.logs). Ids, statuses and amounts only: never a token, secret or card detail.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from shopctl.logs import event
from shopctl.services.system.hooks import never_raises

LATE = frozenset({"EXPIRED", "CANCELED", "FAILED"})


def _transition_name(from_status: str, to_status: str) -> str:
    if from_status in LATE and to_status in ("PAID", "REFUNDED"):
        return "late payment"
    if to_status == "PAID":
        return "payment applied"
    if to_status == "REFUNDED":
        return "order refunded"
    return "order transition"


def _stripe_event(actor: str) -> str | None:
    return actor if actor.startswith("evt_") else None


@never_raises
def _transition(order_ids: Sequence[str], from_status: str, to_status: str, actor: str) -> None:
    name = _transition_name(from_status, to_status)
    for order_id in order_ids:
        event(
            name,
            orderId=order_id,
            fromStatus=from_status,
            toStatus=to_status,
            actor="webhook" if _stripe_event(actor) else actor,
            stripeEventId=_stripe_event(actor),
        )


@never_raises
def _refund(order_id: str, payment_id: str, amount: int | None, status: str) -> None:
    event("refund", orderId=order_id, paymentId=payment_id, amountCents=amount, status=status)


@never_raises
def _webhook(outcome, source: str, lag: float | None) -> None:
    event(
        "webhook outcome",
        stripeEventId=outcome.event_id or None,
        type=outcome.type,
        outcome=outcome.result,
        source=source,
        paymentId=outcome.payment_id,
        lagSeconds=round(lag, 3) if lag is not None else None,
    )


@never_raises
def _throttled(kinds: list[str]) -> None:
    event("login throttled", limits=",".join(kinds))


@never_raises
def _stock_out(product_ids: list[str]) -> None:
    event("stock out", productIds=",".join(product_ids))


_lock = threading.Lock()
_done: list[bool] = []


def install() -> None:
    """Register the log hooks, once per process."""
    from shopctl.services.accounts import throttle
    from shopctl.services.orders import lifecycle
    from shopctl.services.payments import outcomes, refunds

    with _lock:
        if _done:
            return
        lifecycle.on_transition(_transition)
        outcomes.on_outcome(_webhook)
        throttle.on_throttled(_throttled)
        lifecycle.on_stock_out(_stock_out)
        refunds.on_refund(_refund)
        _done.append(True)
