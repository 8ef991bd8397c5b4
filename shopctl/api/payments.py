"""Stripe webhooks (`POST /payment/webhook`, and `POST /webhook` for the Express API's Dashboard
configuration) and `GET /payment/:paymentId/status`."""

from __future__ import annotations

from sanic import Blueprint, Request

from shopctl.api.common import call
from shopctl.api.guards import authenticated
from shopctl.api.responses import ok
from shopctl.schemas import PaymentIdPath, validate
from shopctl.services.payments.checkout import payment_status
from shopctl.services.payments.webhooks import receive

api = Blueprint("payments", url_prefix="/payment")


async def stripe_webhook(request: Request):
    """Verified on the raw bytes, then stored and processed in one transaction; 400 bad
    signature, 5xx failure (stored as FAILED, so Stripe retries)."""
    signature = request.headers.get("stripe-signature")
    outcome = await call(request, receive, request.app.ctx.settings, request.body, signature)
    return ok(
        {"received": True, "eventId": outcome.event_id, "result": outcome.result},
        "Webhook processed",
    )


api.add_route(stripe_webhook, "/webhook", methods=["POST"], name="webhook")


@api.get("/<payment_id>/status")
@authenticated()
async def status(request: Request, payment_id: str):
    path = validate(PaymentIdPath, {"paymentId": payment_id})
    data = await call(request, payment_status, request.ctx.user, str(path.paymentId))
    return ok(data, "Payment status")
