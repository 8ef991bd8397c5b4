"""Applying what Stripe knows outside a webhook: closing a session before a cancel or an
expiry, and the handlers run on objects fetched from Stripe (reconcile, cancel, expiry).

A cancel or an expiry always happens here, whatever Stripe answers (SPEC): when Stripe
cannot confirm that the Checkout Session is closed (unreachable, refusing, or not knowing
the session), the order is canceled or expired anyway, the answer says so, and a payment
that still arrives is a late payment (re-reserved, or refunded when the stock is gone).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from shopctl.config import Settings
from shopctl.db import write_transaction
from shopctl.errors import Conflict, NotFound
from shopctl.models import Order, Payment, User, utcnow
from shopctl.services.common import iso
from shopctl.services.orders import placement as orders
from shopctl.services.orders.expiry import Verdict
from shopctl.services.orders.lifecycle import UNPAID
from shopctl.services.payments import gateway
from shopctl.services.payments.handlers import HANDLERS, Context
from shopctl.services.payments.late_refunds import RunDb

CLOSED, PAID, UNKNOWN, UNREACHABLE, REFUSED = "closed", "paid", "unknown", "unreachable", "refused"
# Sessions closed at once by the expiry job (Stripe's rate limits allow far more).
CLOSE_CONCURRENCY = 20


@dataclass
class Closing:
    """What Stripe said when asked to expire a Checkout Session."""

    session_id: str
    outcome: str  # CLOSED | PAID | UNKNOWN | UNREACHABLE | REFUSED
    detail: str = ""
    session: dict | None = None  # the completed session, when PAID

    @property
    def confirmed(self) -> bool:
        return self.outcome in (CLOSED, PAID)

    def warning(self, done: str, session_expires: str | None) -> str:
        """For the operator and the buyer: what happened and what follows."""
        why = {
            UNREACHABLE: "Stripe could not be reached",
            REFUSED: "Stripe refused to close its Checkout Session",
            UNKNOWN: "Stripe does not know its Checkout Session (a changed key or account?)",
        }[self.outcome]
        until = f" (at {session_expires})" if session_expires else ""
        return (
            f"{done} here, but {why} ({self.detail}). The Checkout Session {self.session_id} "
            f"may stay open until it expires at Stripe{until}; a payment in between is "
            "refunded or re-reserved as a late payment."
        )


def apply_stripe_state(settings: Settings, event_type: str, obj: dict, actor: str) -> Context:
    """Run a handler on an object fetched from Stripe (reconcile, cancel, expiry), then its
    follow-ups (a late payment's refund, Stripe bounded by its deadline)."""
    context = _handled(settings, event_type, obj, actor)
    for followup in context.followups:
        followup.run(settings)
    return context


async def apply_stripe_state_async(
    settings: Settings, event_type: str, obj: dict, actor: str, run_db: RunDb
) -> Context:
    """The same for the API: the database steps through `run_db`, a follow-up's Stripe
    call awaited on the event loop between them."""
    context = await run_db(_handled, settings, event_type, obj, actor)
    for followup in context.followups:
        await followup.run_async(settings, run_db)
    return context


def _handled(settings: Settings, event_type: str, obj: dict, actor: str) -> Context:
    event = {"id": actor, "type": event_type, "data": {"object": obj}}
    with write_transaction():
        context = Context(settings, event, actor=actor)
        HANDLERS[event_type](context)
    return context


async def close_session_async(settings: Settings, session_id: str) -> Closing:
    """Ask Stripe to expire a Checkout Session; never raises for what Stripe answers."""
    import stripe

    try:
        await gateway.expire_session_async(settings, session_id)
        return Closing(session_id, CLOSED)
    except stripe.InvalidRequestError:
        pass  # not open any more (paid, or expired already), or unknown to Stripe
    except stripe.StripeError as exc:
        return _failed(session_id, exc)
    try:
        session = (await gateway.retrieve_session_async(settings, session_id)).to_dict()
    except stripe.InvalidRequestError as exc:
        return Closing(session_id, UNKNOWN, gateway.describe(exc))
    except stripe.StripeError as exc:
        return _failed(session_id, exc)
    if session.get("status") == "complete":
        return Closing(session_id, PAID, session=session)
    return Closing(session_id, CLOSED)


def _failed(session_id: str, exc) -> Closing:
    outcome = UNREACHABLE if gateway.is_unreachable(exc) else REFUSED
    return Closing(session_id, outcome, gateway.describe(exc))


def close_session(settings: Settings, session_id: str) -> Closing:
    return gateway.run(close_session_async(settings, session_id))


async def close_sessions_async(settings: Settings, session_ids: list[str]) -> list[Closing]:
    """Close sessions concurrently, CLOSE_CONCURRENCY at a time, each within the deadline."""
    gate = asyncio.Semaphore(CLOSE_CONCURRENCY)

    async def close(session_id: str) -> Closing:
        async with gate:
            return await close_session_async(settings, session_id)

    return list(await asyncio.gather(*(close(session_id) for session_id in session_ids)))


# --- cancel: a database step, the Stripe call (no thread, no transaction), a database step --


def prepare_cancel(order_id: str, user: User | None) -> str | None:
    """Check the order may be canceled; the Checkout Session to close first, if any.

    The session's link is cleared now: it is dead, and this tells the session's expiry
    webhook that the cancel settles the order.
    """
    with write_transaction():
        if user is not None:
            orders.get_order(user, order_id)  # NotFound for someone else's order
        order = Order.get_or_none(Order.id == order_id)
        if order is None:
            raise NotFound(orders.ORDER_NOT_FOUND)
        if order.status != UNPAID:
            raise Conflict(f"Only unpaid orders can be canceled; this one is {order.status}")
        payment = Payment.get_or_none(Payment.order == order_id)
        if payment is None or not payment.session_id:
            return None
        Payment.update(payment_url=None, updated_at=utcnow()).where(
            Payment.id == payment.id
        ).execute()
        return payment.session_id


def finish_cancel(order_id: str, closing: Closing | None, *, user: User | None, actor: str) -> dict:
    """Cancel the order after Stripe was asked (and a paid session applied, `paid_meanwhile`);
    the order JSON with a `stripe` note."""
    order = orders.cancel_order(order_id, user=user, actor=actor)
    order["stripe"] = _note(order_id, closing)
    return order


def _paid_meanwhile(closing: Closing | None) -> bool:
    return closing is not None and closing.outcome == PAID


def _refuse_when_applied(context: Context) -> None:
    """Stripe says the buyer already paid, and the payment was applied: the cancel is
    refused. A payment that failed its check (verification.py) was flagged for review
    instead, and the cancel goes on."""
    if context.outcome is None:
        raise Conflict("The order was paid at Stripe meanwhile; it was not canceled")


def _note(order_id: str, closing: Closing | None) -> dict:
    if closing is None:
        return {"sessionClosed": True, "outcome": "no-session", "message": None}
    if closing.confirmed:
        return {"sessionClosed": True, "outcome": closing.outcome, "message": None}
    payment = Payment.get(Payment.order == order_id)
    expires = iso(payment.session_expires_at) if payment.session_expires_at else None
    return {
        "sessionClosed": False,
        "outcome": closing.outcome,
        "message": closing.warning("Canceled", expires),
    }


async def cancel_order_async(
    settings: Settings, order_id: str, *, user: User | None, actor: str, run_db: RunDb
) -> dict:
    """The API's cancel: `run_db` runs each database step off the event loop; Stripe is
    awaited on the loop between them, within its deadline."""
    session_id = await run_db(prepare_cancel, order_id, user)
    closing = await close_session_async(settings, session_id) if session_id else None
    if _paid_meanwhile(closing):
        session = closing.session
        completed = "checkout.session.completed"
        _refuse_when_applied(
            await apply_stripe_state_async(settings, completed, session, actor, run_db)
        )
    return await run_db(finish_cancel, order_id, closing, user=user, actor=actor)


def cancel_order(settings: Settings, order_id: str, *, user: User | None, actor: str) -> dict:
    """The CLI's cancel: the same steps, the Stripe call bounded by the same deadline."""
    session_id = prepare_cancel(order_id, user)
    closing = close_session(settings, session_id) if session_id else None
    if _paid_meanwhile(closing):
        completed = "checkout.session.completed"
        _refuse_when_applied(apply_stripe_state(settings, completed, closing.session, actor))
    return finish_cancel(order_id, closing, user=user, actor=actor)


# --- expiry ---------------------------------------------------------------------------------


def expire_overdue(settings: Settings, **options):
    """The cron job: overdue orders' Checkout Sessions are expired at Stripe first,
    CLOSE_CONCURRENCY at a time. Once a whole group found Stripe unreachable, the rest of
    the run does not wait on it again: those orders expire here, noted as unconfirmed."""
    from shopctl.services.orders.expiry import expire_overdue as expire

    stripe_down: list[Closing] = []

    def close(rows: list[tuple[str, str]]) -> dict[str, Verdict]:
        _clear_links([session_id for _, session_id in rows])
        verdicts: dict[str, Verdict] = {}
        for start in range(0, len(rows), CLOSE_CONCURRENCY):
            group = rows[start : start + CLOSE_CONCURRENCY]
            if stripe_down:
                closings = [_skipped(session_id, stripe_down[0]) for _, session_id in group]
            else:
                closings = gateway.run(close_sessions_async(settings, [s for _, s in group]))
                if all(c.outcome == UNREACHABLE for c in closings):
                    stripe_down.append(closings[0])
            for (order_id, _), closing in zip(group, closings, strict=True):
                verdicts[order_id] = _verdict(settings, closing)
        return verdicts

    return expire(settings, before_expire=close, **options)


def _clear_links(session_ids: list[str]) -> None:
    """The sessions' payment links are dead once we close them; a cleared link also tells
    each session's expiry webhook that the expiry job settles the order, so the webhook
    cannot race it (handlers.session_expired)."""
    with write_transaction():
        Payment.update(payment_url=None, updated_at=utcnow()).where(
            Payment.session_id.in_(session_ids)
        ).execute()


def _skipped(session_id: str, first: Closing) -> Closing:
    return Closing(session_id, UNREACHABLE, f"not asked: {first.detail}")


def _verdict(settings: Settings, closing: Closing) -> Verdict:
    if closing.outcome == PAID:
        try:
            context = apply_stripe_state(
                settings, "checkout.session.completed", closing.session, "cron"
            )
        except Exception as exc:  # this order's failure; the others go on
            return Verdict(False, error=f"{type(exc).__name__}: {exc}")
        return Verdict(context.outcome is not None)  # flagged for review: expiry goes on
    if closing.confirmed:
        return Verdict(True)
    return Verdict(True, warning=f"{closing.session_id}: {closing.outcome}: {closing.detail}")
