"""`/_sandbox/…`: what tests and scripts use instead of a browser or a dashboard.

JSON only, no auth, and for this machine only: guard.py refuses everyone else.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from sanic import Blueprint, Request
from sanic.response import HTTPResponse

from . import checkout, disputes, refunds
from .api import json_response
from .engine import AUTOMATIC
from .params import StripeError, not_found
from .settings import SettingsError, check_urls

if TYPE_CHECKING:
    from .instance import Sandbox

bp = Blueprint("sandbox_control", url_prefix="/_sandbox")


def _sandbox(request: Request) -> Sandbox:
    return request.app.ctx.sandbox


def _json_body(request: Request) -> dict[str, Any]:
    if not request.body:
        return {}
    try:
        body = json.loads(request.body)
    except ValueError as exc:
        raise StripeError(f"The request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise StripeError("The request body must be a JSON object.")
    return body


@bp.get("/health")
async def health(request: Request) -> HTTPResponse:
    sb = _sandbox(request)
    return json_response(
        {
            "ok": True,
            "objects": len(sb.store.objects),
            "events": len(sb.store.events),
            "pending_deliveries": sb.deliverer.pending(),
        }
    )


def _shown(runtime) -> dict[str, Any]:
    """The runtime settings as answered: never the webhook signing secret itself."""
    shown = asdict(runtime)
    shown["webhook_secret_set"] = bool(shown.pop("webhook_secret"))
    return shown


@bp.get("/config")
async def get_config(request: Request) -> HTTPResponse:
    return json_response(_shown(_sandbox(request).runtime))


@bp.post("/config")
async def set_config(request: Request) -> HTTPResponse:
    sb = _sandbox(request)
    try:
        sb.runtime.update(_json_body(request))
    except SettingsError as exc:
        raise StripeError(str(exc)) from exc
    return json_response(_shown(sb.runtime))


@bp.post("/sessions/<sid>/pay")
async def pay(request: Request, sid: str) -> HTTPResponse:
    """`{"outcome": …, "shipping_details": {name, address}, "shipping_rate": "shr_…",
    "phone": …}`: the shipping keys are optional (a test address and the first rate)."""
    body = _json_body(request)
    outcome = body.get("outcome", "succeeded")
    if not isinstance(outcome, str):
        raise StripeError("outcome must be a string", param="outcome")
    choice = {
        key: body[key] for key in ("shipping_details", "shipping_rate", "phone") if key in body
    }
    return json_response(checkout.pay(_sandbox(request).engine, sid, outcome, AUTOMATIC, choice))


@bp.post("/sessions/<sid>/expire")
async def expire(request: Request, sid: str) -> HTTPResponse:
    sb = _sandbox(request)
    return json_response(checkout.expire_session(sb.engine, sid, AUTOMATIC))


@bp.post("/refunds/<rid>/fail")
async def fail_refund(request: Request, rid: str) -> HTTPResponse:
    """A pending refund fails (e.g. the card was closed): `{"failure_reason": …}`?"""
    reason = _json_body(request).get("failure_reason")
    if reason is not None and not isinstance(reason, str):
        raise StripeError("failure_reason must be a string", param="failure_reason")
    return json_response(refunds.finish_refund(_sandbox(request).engine, rid, "failed", reason))


@bp.post("/refunds/<rid>/succeed")
async def succeed_refund(request: Request, rid: str) -> HTTPResponse:
    engine = _sandbox(request).engine
    return json_response(refunds.finish_refund(engine, rid, "succeeded", None))


@bp.post("/payment_intents/<pid>/dispute")
async def open_dispute(request: Request, pid: str) -> HTTPResponse:
    """The buyer disputes the charge: `{"reason", "amount", "status", "evidence_due_by"}`?"""
    engine = _sandbox(request).engine
    return json_response(disputes.open_dispute(engine, pid, _json_body(request)))


@bp.post("/disputes/<did>/update")
async def update_dispute(request: Request, did: str) -> HTTPResponse:
    """An open dispute moves: `{"status": "under_review"}` (evidence submitted), …"""
    engine = _sandbox(request).engine
    return json_response(disputes.update_dispute(engine, did, _json_body(request)))


@bp.post("/disputes/<did>/close")
async def close_dispute(request: Request, did: str) -> HTTPResponse:
    """`{"outcome": "won" | "lost"}`; an inquiry closes as `warning_closed`."""
    engine = _sandbox(request).engine
    return json_response(disputes.close_dispute(engine, did, _json_body(request)))


@bp.post("/payment_intents/<pid>/fraud_warning")
async def fraud_warning(request: Request, pid: str) -> HTTPResponse:
    """The issuer reports the charge as likely fraud: `{"fraud_type": …}`?"""
    engine = _sandbox(request).engine
    return json_response(disputes.open_fraud_warning(engine, pid, _json_body(request)))


@bp.get("/deliveries")
async def deliveries(request: Request) -> HTTPResponse:
    event_id, url = request.args.get("event_id"), request.args.get("url")
    data = [
        d
        for d in _sandbox(request).store.deliveries
        if (event_id is None or d["event_id"] == event_id) and (url is None or d["url"] == url)
    ]
    return json_response({"object": "list", "data": data})


@bp.post("/events/<eid>/resend")
async def resend(request: Request, eid: str) -> HTTPResponse:
    sb = _sandbox(request)
    event = sb.store.event(eid)
    if event is None:
        raise not_found("event", eid)
    urls = _json_body(request).get("urls") or sb.runtime.webhook_urls
    try:
        urls = check_urls(urls)
    except SettingsError as exc:
        raise StripeError(str(exc), param="urls") from exc
    event["pending_webhooks"] += len(urls)
    sb.deliverer.enqueue(event, urls)
    return json_response({"event_id": eid, "urls": urls})


@bp.post("/reset")
async def reset(request: Request) -> HTTPResponse:
    sb = _sandbox(request)
    await sb.deliverer.cancel_all()
    sb.store.reset()
    return json_response({"ok": True})
