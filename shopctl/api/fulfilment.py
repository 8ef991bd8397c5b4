"""`/order/:id/shipments` and `/order/:id/refunds`: an admin ships or refunds lines."""

from __future__ import annotations

from sanic import Blueprint, Request

from shopctl.api.common import body, call
from shopctl.api.guards import authenticated
from shopctl.api.orders import _idempotency_key, _order_id
from shopctl.api.responses import ok
from shopctl.fulfilment_schemas import LineRefundCreate, ShipmentCreate, lines_of
from shopctl.services.fulfilment.shipments import ship_order
from shopctl.services.payments.refunds import RefundAsk, request_refund

api = Blueprint("fulfilment", url_prefix="/order")


def _actor(request: Request) -> str:
    return f"admin:{request.ctx.user.email}"


def _created(data: dict, message: str, created: bool):
    response = ok(data, message, status=201)
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    return response


@api.post("/<order_id>/shipments")
@authenticated("ADMIN")
async def create_shipment(request: Request, order_id: str):
    order_id, payload = _order_id(order_id), body(request, ShipmentCreate)
    shipment, created = await call(
        request,
        ship_order,
        order_id,
        lines_of(payload.lines),
        carrier=payload.carrier,
        tracking_number=payload.trackingNumber,
        tracking_url=payload.trackingUrl,
        actor=_actor(request),
        idempotency_key=_idempotency_key(request),
    )
    return _created(shipment, "Shipment created", created)


@api.post("/<order_id>/refunds")
@authenticated("ADMIN")
async def create_refund(request: Request, order_id: str):
    """Stripe is asked in the thread pool, outside any transaction (refunds.py)."""
    order_id, payload = _order_id(order_id), body(request, LineRefundCreate)
    ask = RefundAsk(
        amount=payload.amountCents,
        reason=payload.reason,
        lines=lines_of(payload.lines),
        restock=payload.restock,
        shipping=payload.shipping,
        idempotency_key=_idempotency_key(request),
    )
    settings = request.app.ctx.settings
    refund, created = await call(request, request_refund, settings, order_id, ask, _actor(request))
    return _created(refund, "Refund created", created)
