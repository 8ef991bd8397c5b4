"""Stripe webhooks (`POST /payment/webhook`, and `POST /webhook` for the Express API's Dashboard
configuration) and `GET /payment/:paymentId/status[?sync=true]`."""

from __future__ import annotations

import asyncio
from functools import partial

from sanic import Blueprint, Request

from shopctl.api.common import call, query
from shopctl.api.guards import authenticated
from shopctl.api.responses import ok
from shopctl.checkout_schemas import PaymentStatusQuery
from shopctl.schemas import PaymentIdPath, validate
from shopctl.services.payments.checkout import payment_status
from shopctl.services.payments.confirm import confirm_payment
from shopctl.services.payments.webhooks import receive_async

api = Blueprint("payments", url_prefix="/payment")


async def stripe_webhook(request: Request):
    """Verified on the raw bytes, then stored and processed in one transaction; 400 bad
    signature, 5xx failure (stored as FAILED, so Stripe retries)."""
    signature = request.headers.get("stripe-signature")
    # Shielded: a delivery Stripe gives up on still finishes its follow-up (a late payment's
    # refund) rather than stopping between its database steps.
    delivery = asyncio.ensure_future(
        receive_async(request.app.ctx.settings, request.body, signature, partial(call, request))
    )
    delivery.add_done_callback(lambda task: task.cancelled() or task.exception())  # retrieved
    outcome = await asyncio.shield(delivery)
    return ok(
        {"received": True, "eventId": outcome.event_id, "result": outcome.result},
        "Webhook processed",
    )


api.add_route(stripe_webhook, "/webhook", methods=["POST"], name="webhook")


@api.get("/<payment_id>/status")
@authenticated()
async def status(request: Request, payment_id: str):
    """With `sync=true`, Stripe is asked first, as the built-in success page does."""
    payment_id = str(validate(PaymentIdPath, {"paymentId": payment_id}).paymentId)
    params = query(request, PaymentStatusQuery)
    data = await call(request, payment_status, request.ctx.user, payment_id)  # or 404
    if params.sync:
        settings, run_db = request.app.ctx.settings, partial(call, request)
        await confirm_payment(settings, payment_id, run_db, actor="api sync", strict=True)
        data = await call(request, payment_status, request.ctx.user, payment_id)
    return ok(data, "Payment status")
