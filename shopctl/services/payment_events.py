"""What each Stripe event type does to our orders and payments: a registry of handlers.

Handlers run inside the event's transaction (shopctl.services.webhooks) and are
idempotent on the business effect: `checkout.session.completed` and
`payment_intent.succeeded` both say "paid" for one payment, and whichever comes first
applies it while the other finds the order PAID and does nothing. A late payment
(money for an EXPIRED or CANCELED order) re-reserves the stock or schedules a refund,
at most once per payment: the decision is stored in `payment.late_outcome`, under the
order's row lock. Network calls (the refund) run as follow-ups after the commit.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from shopctl.config import Settings
from shopctl.models import Order, Payment, StripeEvent, utcnow
from shopctl.services.lifecycle import (
    CANCELED,
    EXPIRED,
    FAILED,
    PAID,
    PROCESSING,
    REFUNDED,
    UNPAID,
    lock_order,
    release_stock,
    rereserve_stock,
    transition,
)

LATE = (EXPIRED, CANCELED, FAILED)


@dataclass
class Context:
    settings: Settings
    event: dict
    actor: str
    dry_run: bool = False
    payment: Payment | None = None
    followups: list[Callable[[Settings], None]] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)

    @property
    def obj(self) -> dict:
        return self.event["data"]["object"]

    def note(self, text: str) -> None:
        self.changes.append(text)


HANDLERS: dict[str, Callable[[Context], None]] = {}


def handles(*event_types: str):
    def register(handler):
        for event_type in event_types:
            HANDLERS[event_type] = handler
        return handler

    return register


# --- correlation -------------------------------------------------------------------------


def _id(value) -> str | None:
    """A Stripe reference may be an id or an expanded object."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def find_payment(obj: dict, *, session_id: str | None, intent_id: str | None) -> Payment | None:
    """Ours by metadata.paymentId, then Checkout Session id, then PaymentIntent id."""
    metadata = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    candidates = (
        (Payment.id, metadata.get("paymentId")),
        (Payment.session_id, session_id),
        (Payment.payment_intent_id, intent_id),
    )
    for column, value in candidates:
        if isinstance(value, str) and value:
            payment = Payment.get_or_none(column == value[:255])
            if payment is not None:
                return payment
    return None


def claim(ctx: Context, *, session_id=None, intent_id=None) -> tuple[Order, Payment] | None:
    """The matching order (row-locked) and its payment re-read under that lock."""
    found = find_payment(ctx.obj, session_id=session_id, intent_id=intent_id)
    if found is None:
        return None
    order = lock_order(found.order_id)
    payment = Payment.get_by_id(found.id)
    ctx.payment = payment
    _link(payment, session_id, intent_id)
    return order, payment


def claim_session(ctx: Context) -> tuple[Order, Payment] | None:
    """`claim` for a Checkout Session event: by metadata, session id, then its intent."""
    session = ctx.obj
    return claim(ctx, session_id=session.get("id"), intent_id=_id(session.get("payment_intent")))


def _link(payment: Payment, session_id: str | None, intent_id: str | None) -> None:
    """Remember Stripe's ids the first time an event tells us them."""
    fields = {}
    if session_id and not payment.session_id:
        fields["session_id"] = payment.session_id = session_id
    if intent_id and not payment.payment_intent_id:
        fields["payment_intent_id"] = payment.payment_intent_id = intent_id
    if fields:
        Payment.update(**fields, updated_at=utcnow()).where(Payment.id == payment.id).execute()
    if "payment_intent_id" in fields:
        _adopt_early_refunds(payment)


def _adopt_early_refunds(payment: Payment) -> None:
    """Dashboard refunds carry none of our metadata: a `charge.refunded` that came before
    we knew the PaymentIntent was stored unmatched. Now that we know it, apply it."""
    orphans = StripeEvent.select().where(
        (StripeEvent.type == "charge.refunded") & (StripeEvent.status == "IGNORED")
        & StripeEvent.payload.contains(payment.payment_intent_id)
    )
    totals = [0]
    for row in orphans:
        charge = json.loads(row.payload)["data"]["object"]
        if charge.get("payment_intent") == payment.payment_intent_id:
            totals.append(charge.get("amount_refunded") or 0)
            StripeEvent.update(status="PROCESSED", payment=payment.id, last_error=None,
                               processed_at=utcnow()).where(StripeEvent.id == row.id).execute()
    total = min(max(totals), payment.amount_cents)
    if total > payment.refunded_cents:
        payment.refunded_cents = total
        Payment.update(refunded_cents=total).where(Payment.id == payment.id).execute()


def _move(ctx: Context, order: Order, to: str, reason: str, payment_status: str) -> bool:
    moved = transition(order, to, reason=reason, actor=ctx.actor, payment_status=payment_status)
    if moved:
        ctx.note(f"order {order.id}: → {to} ({reason})")
    return moved


# --- "paid", whichever event says it ---------------------------------------------------


def apply_paid(ctx: Context, order: Order, payment: Payment, reason: str) -> None:
    if order.status in (PAID, REFUNDED):
        return
    if payment.late_outcome == "refund_pending":
        ctx.followups.append(partial(_refund_late, payment.id, ctx.actor))
        return
    fully_refunded = payment.refunded_cents >= payment.amount_cents
    if order.status in (UNPAID, PROCESSING):
        _move(ctx, order, PAID, reason, PAID)
        Payment.update(paid_at=utcnow()).where(Payment.id == payment.id).execute()
        if fully_refunded:  # the refund's event overtook the payment's
            _move(ctx, order, REFUNDED, "refunded at Stripe", REFUNDED)
        return
    if fully_refunded:  # a late payment already given back: no stock to take again
        _move(ctx, order, REFUNDED, f"late payment ({reason}) refunded at Stripe", REFUNDED)
        return
    if rereserve_stock(order):
        _move(ctx, order, PAID, f"late payment ({reason}): stock re-reserved", PAID)
        _set_late(payment, "rereserved", paid_at=utcnow())
        return
    _set_late(payment, "refund_pending")
    ctx.note(f"order {order.id}: late payment, stock gone → refund at Stripe")
    ctx.followups.append(partial(_refund_late, payment.id, ctx.actor))


def _set_late(payment: Payment, outcome: str, **fields) -> None:
    payment.late_outcome = outcome
    Payment.update(late_outcome=outcome, updated_at=utcnow(), **fields).where(
        Payment.id == payment.id
    ).execute()


def _refund_late(payment_id: str, actor: str, settings: Settings) -> None:
    from shopctl.services.payments import refund_late_payment

    refund_late_payment(settings, payment_id, actor=actor)


# --- the handlers ------------------------------------------------------------------------


@handles("checkout.session.completed")
def session_completed(ctx: Context) -> None:
    found = claim_session(ctx)
    if found is None:
        return
    order, payment = found
    if ctx.obj.get("payment_status") in ("paid", "no_payment_required"):
        apply_paid(ctx, order, payment, "checkout completed")
    elif order.status == UNPAID:
        _move(ctx, order, PROCESSING, "checkout completed, delayed payment pending", PROCESSING)


@handles("checkout.session.async_payment_succeeded")
def async_payment_succeeded(ctx: Context) -> None:
    found = claim_session(ctx)
    if found is not None:
        apply_paid(ctx, *found, "delayed payment succeeded")


@handles("checkout.session.async_payment_failed")
def async_payment_failed(ctx: Context) -> None:
    found = claim_session(ctx)
    if found is None:
        return
    order, _ = found
    if order.status in (UNPAID, PROCESSING):
        _move(ctx, order, FAILED, "delayed payment failed", FAILED)
        release_stock(order, "payment-failed")


@handles("checkout.session.expired")
def session_expired(ctx: Context) -> None:
    found = claim_session(ctx)
    if found is None:
        return
    order, payment = found
    # Only the order's current session speaks for it: an older, replaced one does not.
    # A session we closed ourselves (link cleared first) is settled by the cancel or the
    # expiry job that closed it, so this webhook cannot race them to another status.
    closed_by_us = payment.payment_url is None
    current = payment.session_id == ctx.obj.get("id")
    if order.status == UNPAID and current and not closed_by_us:
        _move(ctx, order, EXPIRED, "checkout session expired", EXPIRED)
        release_stock(order, "expired")


@handles("payment_intent.succeeded")
def intent_succeeded(ctx: Context) -> None:
    found = claim(ctx, intent_id=_id(ctx.obj.get("id")))
    if found is not None:
        apply_paid(ctx, *found, "payment succeeded")


@handles("payment_intent.payment_failed")
def intent_failed(ctx: Context) -> None:
    """A declined card is not terminal: the buyer may retry in the same session."""
    intent = ctx.obj
    found = claim(ctx, intent_id=_id(intent.get("id")))
    if found is None:
        return
    _, payment = found
    error = intent.get("last_payment_error") or {}
    message = error.get("message") or error.get("code") or "payment failed"
    Payment.update(
        attempts=Payment.attempts + 1, last_error=str(message)[:1000], updated_at=utcnow()
    ).where(Payment.id == payment.id).execute()
    ctx.note(f"payment {payment.id}: attempt failed ({message})")


@handles("charge.refunded")
def charge_refunded(ctx: Context) -> None:
    """Also for Dashboard refunds (no metadata of ours): the charge's total is the truth."""
    charge = ctx.obj
    found = claim(ctx, intent_id=_id(charge.get("payment_intent")))
    if found is None:
        return
    order, payment = found
    refunded = charge.get("amount_refunded")
    if not isinstance(refunded, int) or refunded < 0:
        return
    apply_refunded_total(ctx, order, payment, refunded)


def apply_refunded_total(ctx: Context, order: Order, payment: Payment, refunded: int) -> None:
    """Record Stripe's refunded total (never less than we know); full → REFUNDED."""
    total = min(max(payment.refunded_cents, refunded), payment.amount_cents)
    if total > payment.refunded_cents:
        Payment.update(refunded_cents=total, updated_at=utcnow()).where(
            Payment.id == payment.id
        ).execute()
        ctx.note(f"payment {payment.id}: refunded {total} of {payment.amount_cents}")
    if total >= payment.amount_cents and order.status in (PAID, *LATE):
        _move(ctx, order, REFUNDED, "refunded at Stripe", REFUNDED)
        if payment.late_outcome == "refund_pending":
            _set_late(payment, "refunded")
