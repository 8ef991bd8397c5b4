"""Stripe Checkout for our orders: plan and start a payment, and the payment's status.

Each flow is split into database steps (short transactions) and one Stripe call between
them, so no transaction ever spans a network call. The Checkout Session is created with
an idempotency key derived from the payment and its planned expiry: a retry, a double
click or two workers racing get the same session back from Stripe.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from shopctl.config import Settings
from shopctl.db import write_transaction
from shopctl.errors import NotFound
from shopctl.models import CheckoutSession, Order, OrderItem, Payment, User, utcnow
from shopctl.schemas import OrderLine
from shopctl.services.orders import placement as orders
from shopctl.services.payments import gateway, shipping_checkout

# Stripe accepts a session expiry from 30 minutes to 24 hours after creation; the
# margins absorb clock skew between us and Stripe.
SESSION_MIN_LIFETIME = timedelta(minutes=31)
SESSION_MAX_LIFETIME = timedelta(hours=23, minutes=50)
NOT_STARTED = "Payment could not be started; retry with POST /api/v1/order/{order_id}/pay"


@dataclass
class CheckoutPlan:
    order_id: str
    payment_id: str
    params: dict | None = None
    key: str | None = None
    existing: dict | None = None


def checkout_json(payment: Payment) -> dict:
    return {
        "paymentId": payment.id,
        "paymentUrl": payment.payment_url,
        "sessionId": payment.session_id,
        "paymentIntent": payment.payment_intent_id,
    }


def _epoch(moment: datetime) -> int:
    return int(moment.replace(tzinfo=UTC).timestamp())


def _from_epoch(value: int) -> datetime:
    return datetime.fromtimestamp(value, UTC).replace(tzinfo=None)


def _session_expiry(order: Order, payment: Payment, now: datetime) -> datetime:
    """As close to the reservation end as Stripe allows; a still-valid earlier plan is kept."""
    planned = payment.session_expires_at
    if planned and payment.session_id is None and planned >= now + SESSION_MIN_LIFETIME:
        return planned
    target = min(max(order.expires_at, now + SESSION_MIN_LIFETIME), now + SESSION_MAX_LIFETIME)
    return target.replace(microsecond=0)


def return_urls(settings: Settings, site: str | None, order_id: str) -> tuple[str, str]:
    """Where Checkout sends the buyer back: (success_url, cancel_url).

    The storefront's pages, or, while there is none (CHECKOUT_RETURN, FRONTEND_URL left
    at its development default), the pages this API serves at `site`, the address the
    caller reached us at (shopctl.api.pages).
    """
    if settings.builtin_checkout_pages:
        base = (site or f"http://127.0.0.1:{settings.port}").rstrip("/")
        return (
            f"{base}/checkout/success?session_id={{CHECKOUT_SESSION_ID}}",
            f"{base}/checkout/cancel?order_id={order_id}",
        )
    frontend = settings.frontend_url.rstrip("/")
    return (
        f"{frontend}/payment/success?session_id={{CHECKOUT_SESSION_ID}}&orderId={order_id}",
        f"{frontend}/payment/cancel?orderId={order_id}",
    )


def _session_params(
    settings: Settings,
    order: Order,
    payment: Payment,
    email: str,
    expires: datetime,
    site: str | None,
) -> dict:
    items = OrderItem.select().where(OrderItem.order == order.id).order_by(OrderItem.product_name)
    shipping, shipping_metadata = shipping_checkout.session_params(settings, order.currency)
    metadata = {"orderId": order.id, "paymentId": payment.id, **shipping_metadata}
    success_url, cancel_url = return_urls(settings, site, order.id)
    return shipping | {
        "mode": "payment",
        "line_items": [
            {
                "quantity": item.quantity,
                "price_data": {
                    "currency": order.currency,
                    "unit_amount": item.price_cents,
                    "product_data": {"name": item.product_name},
                },
            }
            for item in items
        ],
        "metadata": metadata,
        "payment_intent_data": {"metadata": metadata},
        "client_reference_id": order.id,
        "customer_email": email,
        "success_url": success_url,
        "cancel_url": cancel_url,
        "expires_at": _epoch(expires),
    }


def plan_checkout(
    settings: Settings, user: User, order_id: str, site: str | None = None
) -> CheckoutPlan:
    """Check the order can be paid; the open session to reuse, or what to ask Stripe for.
    `site`: the API's address as its caller sees it (for the built-in return pages)."""
    with write_transaction():
        return _plan(settings, user, orders.order_to_pay(user, order_id), site)


def place_order_to_pay(
    settings: Settings,
    user: User,
    items: Sequence[OrderLine],
    *,
    idempotency_key: str | None = None,
    actor: str = "api",
    site: str | None = None,
) -> tuple[Order, bool, CheckoutPlan]:
    """Pay now's database step: (order, created, plan), the order placed and its Checkout
    Session planned in one transaction. A replayed order is planned as a retry would be."""
    plans: list[CheckoutPlan] = []
    order, created = orders.place_order(
        settings,
        user,
        items,
        pay_later=False,
        idempotency_key=idempotency_key,
        actor=actor,
        within=lambda new: plans.append(_plan(settings, user, new, site)),
    )
    if created:
        return order, created, plans[-1]
    return order, created, plan_checkout(settings, user, order.id, site)


def _plan(settings: Settings, user: User, order: Order, site: str | None) -> CheckoutPlan:
    """Inside the caller's transaction, for a payable order with its `.payment`."""
    now = utcnow()
    payment = order.payment
    if (
        payment.session_id
        and payment.payment_url
        and (payment.session_expires_at and payment.session_expires_at > now + timedelta(minutes=1))
    ):
        return CheckoutPlan(order.id, payment.id, existing=checkout_json(payment))
    expires = _session_expiry(order, payment, now)
    Payment.update(session_expires_at=expires, updated_at=now).where(
        Payment.id == payment.id
    ).execute()
    params = _session_params(settings, order, payment, user.email, expires, site)
    key = f"checkout:{payment.id}:{_epoch(expires)}"
    if digest := shipping_checkout.params_digest(params):
        key += f":{digest}"
    return CheckoutPlan(order.id, payment.id, params, key)


def record_session(payment_id: str, session: dict) -> dict:
    fields = {
        "session_id": session["id"],
        "payment_url": session.get("url"),
        "last_error": None,
        "updated_at": utcnow(),
    }
    if isinstance(session.get("payment_intent"), str):
        fields["payment_intent_id"] = session["payment_intent"]
    if isinstance(session.get("expires_at"), int):
        fields["session_expires_at"] = _from_epoch(session["expires_at"])
    with write_transaction():
        Payment.update(**fields).where(Payment.id == payment_id).execute()
        # Kept when a newer session replaces it: a payment on it is still this order's.
        CheckoutSession.insert(
            id=session["id"], payment=payment_id, payment_intent_id=fields.get("payment_intent_id")
        ).on_conflict_ignore().execute()
    return checkout_json(Payment.get_by_id(payment_id))


def record_checkout_failure(payment_id: str, message: str) -> None:
    with write_transaction():
        Payment.update(last_error=message[:1000], updated_at=utcnow()).where(
            Payment.id == payment_id
        ).execute()


RunDb = Callable[..., Awaitable]


async def start_checkout(
    settings: Settings, user: User, order_id: str, run_db: RunDb, site: str | None = None
) -> dict:
    """A Checkout Session for the order: {paymentId, paymentUrl, sessionId, paymentIntent}.

    `run_db` runs a database step off the event loop. When Stripe fails, the order stays
    UNPAID and reserved, and the answer says so with `paymentUrl: None` and a message.
    """
    plan = await run_db(plan_checkout, settings, user, order_id, site)
    return await open_checkout(settings, plan, run_db)


async def open_checkout(settings: Settings, plan: CheckoutPlan, run_db: RunDb) -> dict:
    """The planned session: asked of Stripe (no transaction open), then recorded."""
    import stripe

    if plan.existing:
        return plan.existing
    try:
        session = await gateway.create_session_async(settings, plan.params, plan.key)
    except stripe.StripeError as exc:
        await run_db(record_checkout_failure, plan.payment_id, gateway.describe(exc))
        return {
            "paymentId": plan.payment_id,
            "paymentUrl": None,
            "sessionId": None,
            "message": NOT_STARTED.format(order_id=plan.order_id),
        }
    return await run_db(record_session, plan.payment_id, session.to_dict())


def payment_status(user: User, payment_id: str) -> dict:
    """The owner's (or an admin's) view of one payment; anyone else gets NotFound."""
    payment = Payment.get_or_none(Payment.id == payment_id)
    order = Order.get_or_none(Order.id == payment.order_id) if payment else None
    if order is None or (user.role != "ADMIN" and order.user_id != user.id):
        raise NotFound("Payment not found")
    return {
        "paymentId": payment.id,
        "status": payment.status,
        "sessionId": payment.session_id,
        "paymentUrl": payment.payment_url,
        "orderId": order.id,
        "orderStatus": order.status,
        "amountCents": payment.amount_cents,
        "refundedCents": payment.refunded_cents,
        "currency": payment.currency,
    }
