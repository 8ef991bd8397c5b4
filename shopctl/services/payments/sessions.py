"""Applying what Stripe knows outside a webhook: closing a session before a cancel or an
expiry, and the handlers run on objects fetched from Stripe (reconcile, cancel, expiry)."""

from __future__ import annotations

from shopctl.config import Settings
from shopctl.db import write_transaction
from shopctl.errors import Conflict
from shopctl.models import Order, Payment, User, utcnow
from shopctl.services.orders import placement as orders
from shopctl.services.orders.lifecycle import UNPAID
from shopctl.services.payments import gateway
from shopctl.services.payments.handlers import HANDLERS, Context


def apply_stripe_state(settings: Settings, event_type: str, obj: dict, actor: str) -> Context:
    """Run a handler on an object fetched from Stripe (reconcile, cancel, expiry)."""
    event = {"id": actor, "type": event_type, "data": {"object": obj}}
    with write_transaction():
        context = Context(settings, event, actor=actor)
        HANDLERS[event_type](context)
    for followup in context.followups:
        followup(settings)
    return context


def close_session(settings: Settings, session_id: str, actor: str) -> bool:
    """Expire a Checkout Session at Stripe before we cancel or expire its order.

    False when Stripe says the session already completed: the order was paid (or is
    being paid) and has been reconciled instead. Stripe being unreachable does not
    stop a cancel; a payment that slips through is a late payment, handled as such.
    """
    import stripe

    with write_transaction():  # the session's dead link; tells its expiry webhook "ours"
        Payment.update(payment_url=None, updated_at=utcnow()).where(
            Payment.session_id == session_id
        ).execute()
    try:
        gateway.expire_session(settings, session_id)
        return True
    except stripe.InvalidRequestError:
        session = gateway.retrieve_session(settings, session_id).to_dict()
    except stripe.StripeError:
        return True
    if session.get("status") != "complete":
        return True
    context = apply_stripe_state(settings, "checkout.session.completed", session, actor)
    return context.outcome is not None  # flagged for review: not our payment, cancel goes on


def cancel_order(settings: Settings, order_id: str, *, user: User | None, actor: str) -> dict:
    """Cancel an UNPAID order: its Checkout Session is expired at Stripe first.

    When Stripe says the buyer already paid, the payment is applied instead and the
    cancel is refused (Conflict).
    """
    if user is not None:
        orders.get_order(user, order_id)  # NotFound for someone else's order
    payment = Payment.get_or_none(Payment.order == order_id)
    order = Order.get_or_none(Order.id == order_id)
    open_session = order and order.status == UNPAID and payment and payment.session_id
    if open_session and not close_session(settings, payment.session_id, actor):
        raise Conflict("The order was paid at Stripe meanwhile; it was not canceled")
    return orders.cancel_order(order_id, user=user, actor=actor)


def expire_overdue(settings: Settings, **options):
    """The cron job: each overdue order's Checkout Session is expired at Stripe first."""
    from shopctl.services.orders.expiry import expire_overdue as expire

    def close(order_id: str, session_id: str) -> bool:
        return close_session(settings, session_id, actor="cron")

    return expire(settings, before_expire=close, **options)
