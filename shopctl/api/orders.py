"""`/order`: place (pay now or later), pay, cancel, read and list orders."""

from __future__ import annotations

import asyncio
from functools import partial

from sanic import Blueprint, Request

from shopctl.api.common import body, call, query, site
from shopctl.api.guards import authenticated, call_as_user
from shopctl.api.responses import ok
from shopctl.errors import ShopError
from shopctl.schemas import IdempotencyKey, OrderCreate, OrderListQuery, OrderRef, validate
from shopctl.services.common import iso
from shopctl.services.orders import listing
from shopctl.services.orders import placement as orders
from shopctl.services.payments import checkout, sessions

api = Blueprint("orders", url_prefix="/order")


async def start_payment(request: Request, order_id: str) -> dict:
    """A Stripe Checkout Session for a committed order: {paymentId, paymentUrl, sessionId, …}.

    Runs after the order's transaction committed; the Stripe call is awaited on the event
    loop, each database step runs in the thread pool.
    """
    settings, user = request.app.ctx.settings, request.ctx.user
    return await checkout.start_checkout(
        settings, user, order_id, partial(call, request), site(request)
    )


def _order_id(order_id: str) -> str:
    return str(validate(OrderRef, {"orderId": order_id}).orderId)


def _idempotency_key(request: Request) -> str | None:
    raw = request.headers.get("idempotency-key")
    if raw is None:
        return None
    return validate(IdempotencyKey, {"Idempotency-Key": raw}).key


async def _place(request: Request, *, pay_later: bool):
    """Authentication and placement share one executor hop (the guard deferred it); pay
    now plans its Checkout Session in the placement's transaction too, then asks Stripe."""
    try:
        payload = body(request, OrderCreate)
        key = _idempotency_key(request)
    except ShopError:
        await call_as_user(request, None)  # a bad token is a 401 whatever the body
        raise
    settings = request.app.ctx.settings
    if pay_later:
        place = partial(orders.place_order, settings, pay_later=True)
        order, created = await call_as_user(request, place, payload.items, idempotency_key=key)
        extra, message = {"payLater": True}, "Order created (pay later)"
    else:
        place = partial(checkout.place_order_to_pay, settings, site=site(request))
        order, created, plan = await call_as_user(
            request, place, payload.items, idempotency_key=key
        )
        extra = await checkout.open_checkout(settings, plan, partial(call, request))
        message = "Order created successfully"
    data = {"orderId": order.id, "paymentId": order.payment.id, "expiresAt": iso(order.expires_at)}
    response = ok(data | extra, message, status=201)
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    return response


@api.post("/")
@authenticated(defer=True)
async def create_order(request: Request):
    return await _place(request, pay_later=False)


@api.post("/pay-later")
@authenticated(defer=True)
async def create_pay_later_order(request: Request):
    return await _place(request, pay_later=True)


@api.post("/<order_id>/pay")
@authenticated()
async def pay_order(request: Request, order_id: str):
    return ok(await start_payment(request, _order_id(order_id)), "Payment started")


@api.post("/<order_id>/cancel")
@authenticated()
async def cancel_order(request: Request, order_id: str):
    """Database steps in the thread pool; Stripe is awaited on the loop between them.

    Shielded: when the client gives up (or Sanic's response timeout answers 503 first),
    the cancel still completes, so its database steps never stop half-way."""
    cancel = asyncio.ensure_future(
        sessions.cancel_order_async(
            request.app.ctx.settings,
            _order_id(order_id),
            user=request.ctx.user,
            actor="api",
            run_db=partial(call, request),
        )
    )
    cancel.add_done_callback(lambda task: task.cancelled() or task.exception())  # retrieved
    order = await asyncio.shield(cancel)
    return ok(order, order["stripe"]["message"] or "Order canceled successfully")


@api.get("/")
@authenticated()
async def list_orders(request: Request):
    params = query(request, OrderListQuery)
    rows, meta = await call(request, listing.list_orders, request.ctx.user, params)
    return ok(rows, "Orders retrieved successfully", meta=meta)


@api.get("/<order_id>")
@authenticated()
async def get_order(request: Request, order_id: str):
    order = await call(request, orders.get_order, request.ctx.user, _order_id(order_id))
    return ok(order, "Order retrieved successfully")
