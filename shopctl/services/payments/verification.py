"""Nothing becomes PAID on Stripe's word alone: the one check every payment passes.

A signed event proves that Stripe sent it, not that it pays this order: a session for
another amount or currency, an unknown session that names our `metadata.paymentId`, a
PaymentIntent created elsewhere. Every path that applies a payment (webhook, `events
replay`, `events sync`, `payments reconcile --apply`, a cancel or an expiry that finds
the session paid) goes through the handlers, and the handlers ask `mismatch()` first:

* the amount and currency equal the order's (for a session with `currency_conversion`,
  Adaptive Pricing before API version 2025-03-31, its source amount and currency; for
  that session's PaymentIntent, charged in the buyer's currency, what the session says
  the buyer was charged); a session's amount is the goods plus the chosen shipping
  rate's amount in our table, and a shipping cost that differs from it, or a rate we did
  not offer, is a mismatch;
* the session id and the PaymentIntent id equal the stored ones once we know them; a
  session we created for the payment before a newer one replaced it (pay again, table
  `checkout_session`) is the order's too, and when it is paid while nothing was paid
  through the PaymentIntent we knew, its own PaymentIntent becomes the order's;
* metadata that names an order or a payment names this one, and a PaymentIntent we do
  not know yet is adopted only when its metadata names this payment.

A PaymentIntent flagged before its session was known (its amount in the buyer's currency,
or the PaymentIntent of a replaced session) is closed as DISMISSED when that session
passes the check with the same amount (`remember_session`).

On a mismatch the order does not move: `flag()` keeps what arrived as a `PaymentReview`
(OPEN until an operator refunds or dismisses it: `shopctl payments settle`), the event is
stored as processed with that outcome, and `shopctl doctor` fails naming the order.
"""

from __future__ import annotations

from dataclasses import dataclass

from shopctl.models import CheckoutSession, Order, Payment, PaymentReview, utcnow
from shopctl.services.common import Report
from shopctl.services.orders.money_views import review_json  # noqa: F401  (re-exported)
from shopctl.services.orders.shipping import goods_cents
from shopctl.services.payments.shipping_checkout import chosen_shipping

OPEN, REFUNDED, DISMISSED = "OPEN", "REFUNDED", "DISMISSED"
PAYING = ("checkout.session", "payment_intent", "charge")
# Orders no money was accepted for yet (the life cycle's statuses, by name: orders is below).
OPEN_ORDER = ("UNPAID", "EXPIRED", "CANCELED", "FAILED")


@dataclass(frozen=True)
class Arrived:
    """What a Stripe object says about money: amount, currency, ids and our metadata."""

    kind: str
    amount: object
    currency: object
    session_id: str | None
    intent_id: str | None
    metadata: dict

    def as_json(self) -> dict:
        return {
            "amountCents": self.amount if isinstance(self.amount, int) else None,
            "currency": self.currency if isinstance(self.currency, str) else None,
            "sessionId": self.session_id,
            "paymentIntentId": self.intent_id,
        }


def _id(value) -> str | None:
    if isinstance(value, dict):
        value = value.get("id")
    return value[:255] if isinstance(value, str) and value else None


def arrived(obj: dict) -> Arrived:
    kind = obj.get("object") if isinstance(obj.get("object"), str) else "unknown"
    metadata = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    if kind == "checkout.session":
        amount, currency = obj.get("amount_total"), obj.get("currency")
        conversion = obj.get("currency_conversion")
        if isinstance(conversion, dict) and conversion.get("source_currency"):
            amount, currency = conversion.get("amount_total"), conversion["source_currency"]
        return Arrived(
            kind, amount, currency, _id(obj.get("id")), _id(obj.get("payment_intent")), metadata
        )
    if kind == "payment_intent":
        intent = _id(obj.get("id"))
        return Arrived(kind, obj.get("amount"), obj.get("currency"), None, intent, metadata)
    if kind in ("charge", "refund"):
        intent = _id(obj.get("payment_intent"))
        return Arrived(kind, obj.get("amount"), obj.get("currency"), None, intent, metadata)
    return Arrived(kind, None, None, None, None, metadata)


def converted(obj: dict) -> bool:
    """A Checkout Session whose buyer paid in their currency (legacy Adaptive Pricing)."""
    conversion = obj.get("currency_conversion")
    return isinstance(conversion, dict) and bool(conversion.get("source_currency"))


def _earlier_session(payment: Payment, session_id: str) -> bool:
    """A session we created for this payment, replaced since by its current one."""
    query = CheckoutSession.select().where(
        (CheckoutSession.id == session_id) & (CheckoutSession.payment == payment.id)
    )
    return query.exists()


def _may_take_its_intent(order: Order, payment: Payment, obj: dict) -> bool:
    """A paid earlier session brings its own PaymentIntent: it becomes the order's while
    no money came through the one we knew (the order never paid, no late payment)."""
    return (
        obj.get("payment_status") == "paid"
        and order.status in OPEN_ORDER
        and not (payment.late_outcome)
    )


def _presented(payment: Payment, what: Arrived) -> tuple[object, str] | None:
    """What a session of this payment says its buyer was charged in their currency, to
    compare a PaymentIntent (or charge) in that currency with: the PaymentIntent's own
    session, or, when none names it yet, the current session's currency (the amount is
    then not compared)."""
    presented = CheckoutSession.presentment_currency.is_null(False)
    rows = CheckoutSession.select().where((CheckoutSession.payment == payment.id) & presented)
    current = None
    for row in rows:
        if what.intent_id and row.payment_intent_id == what.intent_id:
            return row.presentment_amount, row.presentment_currency
        if row.id == payment.session_id:
            current = row
    return (what.amount, current.presentment_currency) if current else None


def _in_orders_money(order: Order, payment: Payment, what: Arrived) -> tuple[object, object]:
    """The amount and currency to check against the order's."""
    amount, currency = what.amount, what.currency
    if what.kind not in ("payment_intent", "charge") or not isinstance(currency, str):
        return amount, currency
    other_currency = currency.lower() != order.currency.lower()
    if other_currency and _presented(payment, what) == (amount, currency.lower()):
        return order.amount_cents, order.currency  # its session was checked in ours
    return amount, currency


def mismatch(order: Order, payment: Payment, obj: dict) -> str | None:
    """Why `obj` cannot pay `order` (its payment), or None when everything agrees."""
    what = arrived(obj)
    if what.kind not in PAYING:
        return f"a {what.kind} object cannot pay an order"
    problems = []
    expected, shipping_problem = expected_amount(order, obj)
    if shipping_problem:
        problems.append(shipping_problem)
    amount, currency = _in_orders_money(order, payment, what)
    if not isinstance(amount, int) or isinstance(amount, bool):
        problems.append("no amount")
    elif amount != expected:
        problems.append(f"amount {amount} is not the order's {expected}")
    if not isinstance(currency, str):
        problems.append("no currency")
    elif currency.lower() != order.currency.lower():
        problems.append(f"currency {currency.lower()} is not the order's {order.currency}")
    other_session = payment.session_id and what.session_id and what.session_id != payment.session_id
    earlier = bool(other_session) and _earlier_session(payment, what.session_id)
    if other_session and not earlier:
        problems.append(f"session {what.session_id} is not the order's {payment.session_id}")
    known_intent = payment.payment_intent_id
    other_intent = known_intent and what.intent_id and what.intent_id != known_intent
    if other_intent and not (earlier and _may_take_its_intent(order, payment, obj)):
        problems.append(f"PaymentIntent {what.intent_id} is not the order's {known_intent}")
    named_payment, named_order = what.metadata.get("paymentId"), what.metadata.get("orderId")
    if named_payment is not None and named_payment != payment.id:
        problems.append(f"metadata names payment {str(named_payment)[:60]}")
    if named_order is not None and named_order != order.id:
        problems.append(f"metadata names order {str(named_order)[:60]}")
    adopting = what.kind == "payment_intent" and not known_intent
    if adopting and named_payment != payment.id:
        problems.append("a PaymentIntent we do not know must name this payment in its metadata")
    return "; ".join(problems) or None


def expected_amount(order: Order, obj: dict) -> tuple[int, str | None]:
    """What `obj` must charge for `order`, and why its shipping is not ours (or None).

    A Checkout Session charges the goods plus the shipping rate the buyer chose, at our
    rate's amount (shipping_checkout.py); anything else charges the order's amount, which
    includes shipping once the session's payment was applied.
    """
    if obj.get("object") != "checkout.session":
        return order.amount_cents, None
    shipping, problem = chosen_shipping(obj)
    return goods_cents(order) + (shipping.amount_cents if shipping else 0), problem


def remember_session(payment: Payment, session: dict, intent_id: str | None, actor: str) -> None:
    """A session that passed the check: its PaymentIntent and what its buyer was charged
    (with currency_conversion) kept on its row; reviews its PaymentIntent raised for the
    same money before the session was known are closed, the session speaking for it."""
    charged = arrived({**session, "currency_conversion": None})  # in the buyer's currency
    amount, currency = charged.amount, charged.currency
    if not charged.session_id or not isinstance(currency, str) or type(amount) is not int:
        return
    fields = {"payment_intent_id": intent_id}
    if converted(session):
        fields["presentment_amount"] = amount
        fields["presentment_currency"] = currency.lower()[:10]
    CheckoutSession.insert(id=charged.session_id, payment=payment.id, **fields).on_conflict(
        conflict_target=[CheckoutSession.id], update=fields
    ).execute()
    if not intent_id:
        return
    PaymentReview.update(
        status=DISMISSED,
        note=f"its Checkout Session {charged.session_id} matched the order"[:2000],
        settled_by=actor[:255],
        settled_at=utcnow(),
    ).where(
        (PaymentReview.payment == payment.id)
        & (PaymentReview.status == OPEN)
        & (PaymentReview.payment_intent_id == intent_id)
        & PaymentReview.session_id.is_null()
        & (PaymentReview.amount_cents == amount)
        & (PaymentReview.currency == currency.lower())
    ).execute()


def flag(
    order: Order, payment: Payment, obj: dict, reason: str, *, event_id: str | None
) -> PaymentReview:
    """Keep what arrived for review (inside the handler's transaction); one per object.

    The two "paid" events of one mismatched payment (session and PaymentIntent) make one
    review: an open one naming the same session or PaymentIntent is reused.
    """
    what = arrived(obj)
    existing = _open_review(payment, what)
    if existing is not None:
        return existing
    return PaymentReview.create(
        payment=payment.id,
        order=order.id,
        status=OPEN,
        reason=reason[:500],
        event_id=event_id[:255] if event_id else None,
        amount_cents=what.as_json()["amountCents"],
        currency=(what.currency[:10].lower() if isinstance(what.currency, str) else None),
        session_id=what.session_id,
        payment_intent_id=what.intent_id,
        created_at=utcnow(),
    )


def _open_review(payment: Payment, what: Arrived) -> PaymentReview | None:
    same = []
    if what.session_id:
        same.append(PaymentReview.session_id == what.session_id)
    if what.intent_id:
        same.append(PaymentReview.payment_intent_id == what.intent_id)
    if not same:
        same.append(PaymentReview.session_id.is_null() & PaymentReview.payment_intent_id.is_null())
    condition = same[0]
    for other in same[1:]:
        condition |= other
    query = PaymentReview.select().where(
        (PaymentReview.payment == payment.id) & (PaymentReview.status == OPEN) & condition
    )
    return query.first()


def reviewed(intent_id: str | None, session_id: str | None) -> bool:
    """Whether a review (settled or not) names this PaymentIntent or session."""
    conditions = []
    if intent_id:
        conditions.append(PaymentReview.payment_intent_id == intent_id)
    if session_id:
        conditions.append(PaymentReview.session_id == session_id)
    if not conditions:
        return False
    condition = conditions[0] if len(conditions) == 1 else conditions[0] | conditions[1]
    return PaymentReview.select().where(condition).exists()


def open_reviews(order_id: str | None = None) -> list[PaymentReview]:
    query = PaymentReview.select().where(PaymentReview.status == OPEN)
    if order_id is not None:
        query = query.where(PaymentReview.order == order_id)
    return list(query.order_by(PaymentReview.created_at, PaymentReview.id))


def check_reviews(report: Report) -> None:
    """doctor: money Stripe reported that we did not accept, waiting for an operator."""
    reviews = open_reviews()
    orders = sorted({review.order_id for review in reviews})
    shown = ", ".join(orders[:5]) + (f" and {len(orders) - 5} more" if len(orders) > 5 else "")
    report.add(
        "payment checks",
        not reviews,
        f"{len(reviews)} payment(s) flagged for review: order {shown}"
        if reviews
        else "every applied payment matched its order",
        "shopctl payments reconcile (lists each with the command that settles it)",
    )
