"""Confirming a payment with Stripe when the buyer comes back from Checkout.

Stripe's fulfilment guide (https://docs.stripe.com/checkout/fulfillment) has the landing
page retrieve the Checkout Session and, if it is paid, fulfil it through the same
function as the webhook, because the page may come first (or alone, when webhooks are
late). Here that function is the webhook's own handler for `checkout.session.completed`
(`sessions.apply_stripe_state_async`), with every check it makes, under the order's row lock:
the page, the webhook, `events sync` and `payments reconcile` are idempotent with each
other; whichever comes first moves the order, the others find it moved.

Used by the built-in success page (shopctl.api.pages) and by
`GET /payment/:paymentId/status?sync=true`. The Stripe call is awaited on the event loop
between two database steps (`run_db`), within STRIPE_TIMEOUT: no transaction is open and
no thread waits on it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from shopctl.config import Settings
from shopctl.errors import NotFound, ShopError, TooManyRequests
from shopctl.models import Order, Payment, PaymentReview
from shopctl.services.orders.lifecycle import PAID, REFUNDED
from shopctl.services.orders.placement import orders_json
from shopctl.services.payments import gateway
from shopctl.services.payments.sessions import apply_stripe_state_async

log = logging.getLogger("shopctl.payments")

# Stripe is asked about one payment at most this often (per worker process); a buyer's
# page refreshes slower than this, a storefront polling `?sync=true` faster gets 429.
LOOKUP_INTERVAL = 2.0
# Once an order is PAID or REFUNDED no completed session can change it.
SETTLED = (PAID, REFUNDED)

RunDb = Callable[..., Awaitable]


class Interval:
    """At most one call per key every `seconds`, in this process."""

    def __init__(self, seconds: float, size: int = 10_000):
        self.seconds, self.size = seconds, size
        self._last: dict[str, float] = {}

    def wait(self, key: str) -> float:
        """0 when a call for `key` may go now (and it is counted), else seconds to wait."""
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.seconds:
            return self.seconds - (now - last)
        if len(self._last) >= self.size:  # forget the keys whose interval has passed
            self._last = {k: t for k, t in self._last.items() if now - t < self.seconds}
        self._last[key] = now
        return 0.0

    def restart(self, key: str) -> None:
        """Count the interval from now: from when the call ended rather than began."""
        self._last[key] = time.monotonic()


LOOKUPS = Interval(LOOKUP_INTERVAL)


@dataclass(frozen=True)
class Confirmation:
    """What the buyer may be told: the order as stored after the confirmation."""

    order: dict  # placement.order_json: id, status, amount, items, payment, expiresAt…
    late_outcome: str | None  # a payment that came after the reservation: its outcome
    asked: bool = False  # Stripe was asked this time
    session_status: str | None = None  # open | complete | expired, when Stripe answered
    unreachable: bool = False  # Stripe was asked and did not answer
    unapplied: bool = False  # Stripe said complete, but the handler refused it
    in_review: bool = False  # the handler's checks flagged what Stripe said (amount, ids…)


def payment_for_session(session_id: str) -> str:
    """Our payment whose Checkout Session this is; NotFound for one we never made."""
    payment = Payment.get_or_none(Payment.session_id == session_id)
    if payment is None:
        raise NotFound("No order of this shop has this Checkout Session")
    return payment.id


def _stored(payment_id: str) -> tuple[Order, Payment]:
    payment = Payment.get_by_id(payment_id)
    return Order.get_by_id(payment.order_id), payment


def _in_review(payment_id: str) -> bool:
    reviews = PaymentReview.select().where(
        (PaymentReview.payment == payment_id) & (PaymentReview.status == "OPEN")
    )
    return reviews.exists()


def _needs_stripe(payment_id: str) -> str | None:
    """The session to ask Stripe about, or None when there is nothing it could change
    (settled, a late payment decided, or flagged for an operator's review)."""
    order, payment = _stored(payment_id)
    if payment.session_id is None or order.status in SETTLED or payment.late_outcome:
        return None
    return None if _in_review(payment_id) else payment.session_id


def _view(payment_id: str, **found) -> Confirmation:
    order, payment = _stored(payment_id)
    view = orders_json([order])[0]
    return Confirmation(view, payment.late_outcome, in_review=_in_review(payment_id), **found)


async def confirm_payment(
    settings: Settings, payment_id: str, run_db: RunDb, *, actor: str, strict: bool = False
) -> Confirmation:
    """Ask Stripe about the payment's Checkout Session and apply a completed one.

    Lenient (the buyer's page): a look-up too soon after the last one, an unreachable
    Stripe or a refused session leave the order as stored and say so. `strict` (the
    API) raises instead: TooManyRequests, PaymentProviderError, the handler's error.
    """
    import stripe

    session_id = await run_db(_needs_stripe, payment_id)
    if session_id is None:
        return await run_db(_view, payment_id)
    if wait := LOOKUPS.wait(payment_id):
        if strict:
            retry = max(1, round(wait + 0.5))
            raise TooManyRequests(
                f"Payment checked with Stripe just now; retry in {retry} s", retry
            )
        return await run_db(_view, payment_id)
    try:
        session = await gateway.retrieve_session_async(settings, session_id)
    except stripe.StripeError as exc:
        LOOKUPS.restart(payment_id)
        if strict:
            raise gateway.provider_error(exc) from None
        log.warning("payment %s: Stripe not reached (%s)", payment_id, gateway.describe(exc))
        return await run_db(_view, payment_id, asked=True, unreachable=True)
    LOOKUPS.restart(payment_id)
    session = session.to_dict()
    found = {"asked": True, "session_status": session.get("status")}
    if session.get("status") == "complete":
        try:
            completed = "checkout.session.completed"
            await apply_stripe_state_async(settings, completed, session, actor, run_db)
        except ShopError as exc:
            if strict:
                raise
            log.warning("payment %s: completed session not applied (%s)", payment_id, exc)
            found["unapplied"] = True
    return await run_db(_view, payment_id, **found)


async def confirm_session(
    settings: Settings, session_id: str, run_db: RunDb, *, actor: str
) -> Confirmation:
    """The buyer's return from Checkout with `session_id`: NotFound for a session we never
    made (nothing is asked of Stripe for it), else `confirm_payment`, lenient."""
    payment_id = await run_db(payment_for_session, session_id)
    return await confirm_payment(settings, payment_id, run_db, actor=actor)


def returned_order(order_id: str) -> Confirmation:
    """The order a buyer came back to from Checkout's cancel link, as stored."""
    payment = Payment.get_or_none(Payment.order == order_id)
    if payment is None:
        raise NotFound("No such order")
    return _view(payment.id)
