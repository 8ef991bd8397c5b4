"""What each Stripe event type does to our orders and payments: a registry of handlers.

Handlers run inside the event's transaction (shopctl.services.payments.webhooks) and are
idempotent on the business effect: `checkout.session.completed` and
`payment_intent.succeeded` both say "paid" for one payment, and whichever comes first
applies it while the other finds the order PAID and does nothing. A late payment
(money for an EXPIRED or CANCELED order) re-reserves the stock or schedules a refund,
at most once per payment: the decision is stored in `payment.late_outcome`, under the
order's row lock. Network calls (the refund) run as follow-ups after the commit.

Statements are few because a webhook's transaction is most of its cost: `claim` finds
and locks the order and its payment in one SELECT, and every change a handler makes to
the payment row is staged on the Context and written by one UPDATE when it returns.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import reduce, wraps

from peewee import SQL, Case, Model, Node, Query

from shopctl.config import Settings
from shopctl.db import is_postgres
from shopctl.models import Order, Payment, utcnow
from shopctl.prepared import Params, PreparedStatement
from shopctl.services.orders.lifecycle import (
    CANCELED,
    EXPIRED,
    FAILED,
    PAID,
    PROCESSING,
    REFUNDED,
    UNPAID,
    release_stock,
    rereserve_stock,
    transition,
)
from shopctl.services.orders.shipping import ship_to
from shopctl.services.payments import refund_ledger, shipping_checkout, verification
from shopctl.services.payments.late_refunds import LateRefund

LATE = (EXPIRED, CANCELED, FAILED)


@dataclass
class Context:
    settings: Settings
    event: dict
    actor: str
    dry_run: bool = False
    payment: Payment | None = None
    followups: list[LateRefund] = field(default_factory=list)  # run after the commit
    changes: list[str] = field(default_factory=list)
    staged: dict = field(default_factory=dict)
    staged_for: str | None = None
    outcome: str | None = None  # e.g. "flagged for review: …", stored with the event

    @property
    def obj(self) -> dict:
        return self.event["data"]["object"]

    def note(self, text: str) -> None:
        self.changes.append(text)

    def stage(self, payment: Payment, **fields) -> None:
        """Change `payment` now (in memory) and in the database at `flush()`, in one UPDATE."""
        if self.staged_for not in (None, payment.id):
            self.flush()
        for name, value in fields.items():
            if not isinstance(value, Node):  # an expression, e.g. attempts + 1, is the DB's
                setattr(payment, name, value)
        self.staged.update(fields)
        self.staged_for = payment.id

    def flush(self) -> None:
        """Write the staged payment columns; every handler ends with it."""
        if not self.staged:
            pass
        elif any(isinstance(value, Node) for value in self.staged.values()):
            Payment.update(**self.staged, updated_at=utcnow()).where(
                Payment.id == self.staged_for
            ).execute()
        else:  # the usual case: values only, one statement compiled per set of columns
            names = tuple(sorted(self.staged))
            values = [_column_value(name, self.staged[name]) for name in names]
            _PAYMENT_UPDATE.run((names,), [*values, utcnow(), self.staged_for])
        self.staged, self.staged_for = {}, None


def _column_value(name: str, value):
    return Payment._meta.fields[name].db_value(value)


def _payment_update(p: Params, names: tuple[str, ...]) -> Query:
    """UPDATE payment SET each of `names` = p[0], p[1]…, updated_at, WHERE id = the last."""
    changes = {Payment._meta.fields[name]: p[n] for n, name in enumerate(names)}
    changes[Payment.updated_at] = p[len(names)]
    return Payment.update(changes).where(Payment.id == p[len(names) + 1])


_PAYMENT_UPDATE = PreparedStatement(_payment_update)


HANDLERS: dict[str, Callable[[Context], None]] = {}


def handles(*event_types: str):
    """Register a handler; it ends by writing the payment changes it staged."""

    def register(handler):
        @wraps(handler)
        def run(ctx: Context) -> None:
            handler(ctx)
            ctx.flush()

        for event_type in event_types:
            HANDLERS[event_type] = run
        return run

    return register


# --- correlation -------------------------------------------------------------------------


def _id(value) -> str | None:
    """A Stripe reference may be an id or an expanded object."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def _candidates(obj: dict, session_id: str | None, intent_id: str | None) -> list:
    """How an event may name our payment, (column, value) most trusted first."""
    metadata = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    pairs = (
        ("id", metadata.get("paymentId")),
        ("session_id", session_id),
        ("payment_intent_id", intent_id),
    )
    return [(column, value[:255]) for column, value in pairs if isinstance(value, str) and value]


def lock_payment(
    obj: dict, *, session_id: str | None, intent_id: str | None
) -> tuple[Order, Payment] | None:
    """Ours by metadata.paymentId, then Checkout Session id, then PaymentIntent id: the
    order and its payment, read and row-locked in one statement.

    `FROM "order" JOIN payment … FOR UPDATE` locks the order's row before the payment's
    (PostgreSQL takes a joined row's locks in FROM order), the order every writer
    follows (lifecycle.py), and re-reads both rows if a concurrent transaction changed
    them while it waited. SQLite's write transaction holds the database lock already.
    """
    candidates = _candidates(obj, session_id, intent_id)
    if not candidates:
        return None
    columns, values = zip(*candidates, strict=True)
    row = _CLAIM.run((columns,), values).fetchone()
    if row is None:
        return None
    width = len(Order._meta.sorted_fields)
    return _model(Order, row[:width]), _model(Payment, row[width:])


def _claim_query(p: Params, columns: tuple[str, ...]) -> Query:
    """The order and its payment whose `columns` equal p[0], p[1], …: built once per
    database and set of ids (peewee would take 0.3 ms of CPU each time)."""
    matches = [Payment._meta.columns[column] == p[n] for n, column in enumerate(columns)]
    fields = (*Order._meta.sorted_fields, *Payment._meta.sorted_fields)
    query = (
        Order.select(*fields)
        .join(Payment, on=(Payment.order == Order.id))
        .where(reduce(operator.or_, matches))
    )
    if len(matches) > 1:  # two payments may match different ids: the most trusted wins
        ranks = [(match, SQL(str(rank))) for rank, match in enumerate(matches)]
        query = query.order_by(Case(None, ranks))
    query = query.limit(1)
    return query.for_update() if is_postgres() else query


_CLAIM = PreparedStatement(_claim_query)


def _model(model: type[Model], values) -> Model:
    """A model from a row of `model`'s fields, without peewee's defaults (uuid4, now)."""
    pairs = zip(model._meta.sorted_fields, values, strict=True)
    return model(__no_default__=True, **{field.name: field.python_value(v) for field, v in pairs})


def claim(ctx: Context, *, session_id=None, intent_id=None) -> tuple[Order, Payment] | None:
    """The matching order and its payment, both row-locked; Stripe's ids remembered when
    the object passes the payment check (verification.py)."""
    found = lock_payment(ctx.obj, session_id=session_id, intent_id=intent_id)
    if found is None:
        return None
    order, payment = found
    ctx.payment = payment
    _link(ctx, order, payment, session_id, intent_id)
    return order, payment


def claim_session(ctx: Context) -> tuple[Order, Payment] | None:
    """`claim` for a Checkout Session event: by metadata, session id, then its intent."""
    session = ctx.obj
    return claim(ctx, session_id=session.get("id"), intent_id=_id(session.get("payment_intent")))


def _link(
    ctx: Context, order: Order, payment: Payment, session_id: str | None, intent_id: str | None
) -> None:
    """Remember Stripe's ids the first time an event tells us them, if they are ours: a
    session or PaymentIntent is adopted only when its amount, currency and metadata agree
    (verification.py; a paid earlier session of the order brings its own PaymentIntent)."""
    new_session = session_id and not payment.session_id
    new_intent = intent_id and intent_id != payment.payment_intent_id
    converted = verification.converted(ctx.obj)
    if not (new_session or new_intent or converted):
        return
    if verification.mismatch(order, payment, ctx.obj):
        return
    replaced_intent = new_intent and payment.payment_intent_id is not None
    if new_session:
        ctx.stage(payment, session_id=session_id)
    if new_intent:
        ctx.stage(payment, payment_intent_id=intent_id)
        total = min(refund_ledger.adopt_early_refunds(order, payment), payment.amount_cents)
        if total > payment.refunded_cents:
            ctx.stage(payment, refunded_cents=total)
    if session_id and (converted or replaced_intent):
        verification.remember_session(payment, ctx.obj, intent_id, ctx.actor)


def _move(
    ctx: Context, order: Order, payment: Payment, to: str, reason: str, payment_status: str
) -> bool:
    """`transition` the order; the payment's status is staged with the payment's other
    changes (one UPDATE) rather than written by `transition`."""
    moved = transition(order, to, reason=reason, actor=ctx.actor)
    if moved:
        ctx.stage(payment, status=payment_status)
        ctx.note(f"order {order.id}: → {to} ({reason})")
    return moved


# --- "paid", whichever event says it ---------------------------------------------------


def apply_paid(ctx: Context, order: Order, payment: Payment, reason: str) -> None:
    """Money arrived for `order`: checked first (verification.py), then applied once,
    with the order's shipping (address, rate, amount) in the same transaction."""
    if shipping_checkout.waits_for_session(order, ctx.obj):
        ctx.note(f"order {order.id}: paid; its Checkout Session's event brings the shipping")
        return
    problem = verification.mismatch(order, payment, ctx.obj)
    if problem is not None:
        flag_payment(ctx, order, payment, problem)
        return
    if order.status in (PAID, REFUNDED):
        return
    _ship_to(ctx, order, payment)
    if payment.late_outcome == "refund_pending":
        ctx.followups.append(LateRefund(payment.id, ctx.actor))
        return
    fully_refunded = payment.refunded_cents >= payment.amount_cents
    if order.status in (UNPAID, PROCESSING):
        _move(ctx, order, payment, PAID, reason, PAID)
        ctx.stage(payment, paid_at=utcnow())
        if fully_refunded:  # the refund's event overtook the payment's
            _move(ctx, order, payment, REFUNDED, "refunded at Stripe", REFUNDED)
        return
    if fully_refunded:  # a late payment already given back: no stock to take again
        _move(
            ctx, order, payment, REFUNDED, f"late payment ({reason}) refunded at Stripe", REFUNDED
        )
        return
    if rereserve_stock(order):
        _move(ctx, order, payment, PAID, f"late payment ({reason}): stock re-reserved", PAID)
        _set_late(ctx, payment, "rereserved", paid_at=utcnow())
        return
    _set_late(ctx, payment, "refund_pending")
    ctx.note(f"order {order.id}: late payment, stock gone → refund at Stripe")
    ctx.followups.append(LateRefund(payment.id, ctx.actor))


def _ship_to(ctx: Context, order: Order, payment: Payment) -> None:
    """The session's shipping (checked by `mismatch`) onto the order; the payment's amount
    becomes the order's, shipping included, so refunds may give all of it back."""
    shipping, _ = shipping_checkout.chosen_shipping(ctx.obj)
    if shipping is not None:
        ship_to(order, shipping)
        ctx.stage(payment, amount_cents=order.amount_cents)


def flag_payment(ctx: Context, order: Order, payment: Payment, problem: str) -> None:
    """Keep what arrived for an operator; the order does not move."""
    review = verification.flag(order, payment, ctx.obj, problem, event_id=ctx.event.get("id"))
    ctx.outcome = f"flagged for review ({review.id}): {problem}"[:2000]
    ctx.note(f"order {order.id}: payment not accepted, flagged for review: {problem}")


def _set_late(ctx: Context, payment: Payment, outcome: str, **fields) -> None:
    ctx.stage(payment, late_outcome=outcome, **fields)


# --- the handlers ------------------------------------------------------------------------


@handles("checkout.session.completed")
def session_completed(ctx: Context) -> None:
    found = claim_session(ctx)
    if found is None:
        return
    order, payment = found
    if ctx.obj.get("payment_status") in ("paid", "no_payment_required"):
        apply_paid(ctx, order, payment, "checkout completed")
    elif order.status == UNPAID and verification.mismatch(order, payment, ctx.obj) is None:
        _move(
            ctx,
            order,
            payment,
            PROCESSING,
            "checkout completed, delayed payment pending",
            PROCESSING,
        )


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
    order, payment = found
    if order.status in (UNPAID, PROCESSING):
        _move(ctx, order, payment, FAILED, "delayed payment failed", FAILED)
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
        _move(ctx, order, payment, EXPIRED, "checkout session expired", EXPIRED)
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
    ctx.stage(payment, attempts=Payment.attempts + 1, last_error=str(message)[:1000])
    ctx.note(f"payment {payment.id}: attempt failed ({message})")
