"""The Stripe REST v1 subset: auth, latency and failure injection, idempotency, routes."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from sanic import Blueprint, Request
from sanic.response import HTTPResponse

from . import checkout, listing, refunds
from .engine import Origin
from .params import StripeError, check_known, get_str, parse_form

if TYPE_CHECKING:
    from .instance import Sandbox

log = logging.getLogger("shopctl.sandbox")
bp = Blueprint("stripe_v1", url_prefix="/v1")
Handler = Callable[..., dict[str, Any]]


def json_response(
    body: dict[str, Any] | str, status: int = 200, headers: dict[str, str] | None = None
) -> HTTPResponse:
    text = body if isinstance(body, str) else json.dumps(body, indent=2)
    return HTTPResponse(text, status=status, headers=headers, content_type="application/json")


def error_response(request: Request, error: StripeError) -> HTTPResponse:
    return json_response(error.body(getattr(request.ctx, "request_id", None)), error.status)


def endpoint(handler: Handler) -> Callable[..., Any]:
    """Wrap a handler(sb, params, origin, **path) in everything a Stripe API call goes through."""

    @functools.wraps(handler)
    async def wrapped(request: Request, **path: str) -> HTTPResponse:
        sb: Sandbox = request.app.ctx.sandbox
        if sb.runtime.latency_ms:
            await asyncio.sleep(sb.runtime.latency_ms / 1000)
        inject = sb.should_fail()
        try:
            body, status, headers = _call(sb, request, handler, path)
        except StripeError as exc:
            body, status, headers = exc.body(request.ctx.request_id), exc.status, {}
        if inject:
            # Like a response lost on the way back: the request did run (and an idempotency
            # key will replay its real result), but the caller sees a 500.
            failure = StripeError(
                "An unknown error occurred (injected by the sandbox).", status=500, type="api_error"
            )
            return error_response(request, failure)
        return json_response(body, status, headers)

    return wrapped


def _call(
    sb: Sandbox, request: Request, handler: Handler, path: dict[str, str]
) -> tuple[Any, int, dict[str, str]]:
    _authenticate(request)
    params = _params(request)
    key = request.headers.get("Idempotency-Key") if request.method == "POST" else None
    if key is None:
        return handler(sb, params, Origin(request.ctx.request_id), **path), 200, {}
    fingerprint = json.dumps([request.method, request.path, params], sort_keys=True)
    slot = f"{request.ctx.api_key}:{key}"
    saved = sb.store.idempotency.get(slot)
    if saved is not None:
        if saved["fingerprint"] != fingerprint:
            raise StripeError(
                "Keys for idempotent requests can only be used with the same parameters they "
                f"were first used with. Try using a key other than '{key}' if you meant to "
                "execute a different request.",
                type="idempotency_error",
            )
        return saved["body"], saved["status"], {"Idempotent-Replayed": "true"}
    if len(key) > 255:
        raise StripeError("Idempotency-Key must be at most 255 characters.")
    text, status = _run_once(handler, sb, params, Origin(request.ctx.request_id, key), path)
    sb.store.idempotency[slot] = {"fingerprint": fingerprint, "status": status, "body": text}
    sb.store.dirty = True
    return text, status, {}


def _run_once(
    handler: Handler, sb: Sandbox, params: dict[str, Any], origin: Origin, path: dict[str, str]
) -> tuple[str, int]:
    """The first execution under a key: its answer is what every replay gets."""
    try:
        body, status = handler(sb, params, origin, **path), 200
    except StripeError as exc:
        if exc.status != 402:  # Stripe saves no rejected request, but does save a decline
            raise
        body, status = exc.body(origin.request_id), exc.status
    return json.dumps(body, indent=2), status


def _authenticate(request: Request) -> None:
    auth = request.headers.get("Authorization", "")
    scheme, _, key = auth.partition(" ")
    if not auth:
        raise StripeError(
            "You did not provide an API key. You need to provide your API key in the "
            "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
            "YOUR_SECRET_KEY').",
            status=401,
        )
    if scheme.lower() != "bearer" or not key.startswith(("sk_test_", "rk_test_")):
        shown = f"{key[:8]}****{key[-4:]}" if len(key) > 12 else "****"
        raise StripeError(
            f"Invalid API Key provided: {shown} (the sandbox takes test keys only: sk_test_…)",
            status=401,
        )
    request.ctx.api_key = key


def _params(request: Request) -> dict[str, Any]:
    try:
        raw = request.query_string
        if request.method == "POST" and request.body:
            raw = f"{raw}&{request.body.decode()}" if raw else request.body.decode()
    except UnicodeDecodeError as exc:
        raise StripeError("Invalid request body: it must be UTF-8 form data.") from exc
    return parse_form(raw)


def _no_params(params: dict[str, Any]) -> None:
    check_known(params, frozenset())


# -- Checkout Sessions --------------------------------------------------------------------


@bp.post("/checkout/sessions")
@endpoint
def create_session(sb: Sandbox, params: dict[str, Any], origin: Origin) -> dict[str, Any]:
    session = checkout.create_session(sb.engine, params, origin, sb.settings.base_url())
    return listing.expand(sb.store, session, params)


@bp.get("/checkout/sessions/<sid>")
@endpoint
def retrieve_session(
    sb: Sandbox, params: dict[str, Any], origin: Origin, sid: str
) -> dict[str, Any]:
    _no_params(params)
    session = sb.engine.find("checkout.session", unquote(sid), "checkout.session", "session")
    return listing.expand(sb.store, checkout.refresh(sb.engine, session), params)


@bp.get("/checkout/sessions")
@endpoint
def list_sessions(sb: Sandbox, params: dict[str, Any], origin: Origin) -> dict[str, Any]:
    check_known(
        params,
        listing.PAGING
        | {
            "payment_intent",
            "status",
            "customer",
            "customer_details",
            "payment_link",
            "subscription",
        },
    )
    checkout.expire_due(sb.engine)
    status = get_str(params, "status", choices=("open", "complete", "expired"))
    intent = get_str(params, "payment_intent")
    items = listing.filtered(
        sb.store.all("checkout.session"),
        lambda s: (
            (status is None or s["status"] == status)
            and (intent is None or s["payment_intent"] == intent)
        ),
    )
    page = listing.page(items, params, "/v1/checkout/sessions", "checkout.session")
    return listing.expand(sb.store, page, params)


@bp.get("/checkout/sessions/<sid>/line_items")
@endpoint
def list_line_items(
    sb: Sandbox, params: dict[str, Any], origin: Origin, sid: str
) -> dict[str, Any]:
    check_known(params, listing.PAGING - {"created"})
    session = sb.engine.find("checkout.session", unquote(sid), "checkout.session", "session")
    return listing.page(
        sb.store.line_items[session["id"]],
        params,
        f"/v1/checkout/sessions/{session['id']}/line_items",
        "line item",
    )


@bp.post("/checkout/sessions/<sid>/expire")
@endpoint
def expire_session(sb: Sandbox, params: dict[str, Any], origin: Origin, sid: str) -> dict[str, Any]:
    _no_params(params)
    return listing.expand(
        sb.store, checkout.expire_session(sb.engine, unquote(sid), origin), params
    )


# -- PaymentIntents, charges, refunds -----------------------------------------------------


@bp.post("/payment_intents")
@endpoint
def create_intent(sb: Sandbox, params: dict[str, Any], origin: Origin) -> dict[str, Any]:
    return listing.expand(sb.store, sb.engine.create_intent(params, origin), params)


@bp.get("/payment_intents/<pid>")
@endpoint
def retrieve_intent(
    sb: Sandbox, params: dict[str, Any], origin: Origin, pid: str
) -> dict[str, Any]:
    check_known(params, frozenset({"client_secret"}))
    intent = sb.engine.find("payment_intent", unquote(pid), "payment_intent", "intent")
    return listing.expand(sb.store, intent, params)


@bp.get("/payment_intents")
@endpoint
def list_intents(sb: Sandbox, params: dict[str, Any], origin: Origin) -> dict[str, Any]:
    check_known(params, listing.PAGING | {"customer"})
    page = listing.page(
        sb.store.all("payment_intent"), params, "/v1/payment_intents", "payment_intent"
    )
    return listing.expand(sb.store, page, params)


@bp.post("/payment_intents/<pid>/confirm")
@endpoint
def confirm_intent(sb: Sandbox, params: dict[str, Any], origin: Origin, pid: str) -> dict[str, Any]:
    intent = sb.engine.confirm_intent(unquote(pid), params, origin)
    return listing.expand(sb.store, intent, params)


@bp.post("/payment_intents/<pid>/cancel")
@endpoint
def cancel_intent(sb: Sandbox, params: dict[str, Any], origin: Origin, pid: str) -> dict[str, Any]:
    intent = sb.engine.cancel_intent(unquote(pid), params, origin)
    return listing.expand(sb.store, intent, params)


@bp.get("/charges/<cid>")
@endpoint
def retrieve_charge(
    sb: Sandbox, params: dict[str, Any], origin: Origin, cid: str
) -> dict[str, Any]:
    charge = sb.engine.find("charge", unquote(cid), "charge", "charge")
    return listing.expand(sb.store, charge, params)


@bp.post("/refunds")
@endpoint
def create_refund(sb: Sandbox, params: dict[str, Any], origin: Origin) -> dict[str, Any]:
    refund = refunds.create_refund(sb.engine, params, origin, sb.runtime.refund_status)
    return listing.expand(sb.store, refund, params)


@bp.get("/refunds/<rid>")
@endpoint
def retrieve_refund(
    sb: Sandbox, params: dict[str, Any], origin: Origin, rid: str
) -> dict[str, Any]:
    refund = sb.engine.find("refund", unquote(rid), "refund", "refund")
    return listing.expand(sb.store, refund, params)


@bp.get("/refunds")
@endpoint
def list_refunds(sb: Sandbox, params: dict[str, Any], origin: Origin) -> dict[str, Any]:
    check_known(params, listing.PAGING | {"charge", "payment_intent"})
    charge, intent = get_str(params, "charge"), get_str(params, "payment_intent")
    items = listing.filtered(
        sb.store.all("refund"),
        lambda r: (
            (charge is None or r["charge"] == charge)
            and (intent is None or r["payment_intent"] == intent)
        ),
    )
    return listing.expand(sb.store, listing.page(items, params, "/v1/refunds", "refund"), params)


# -- Disputes and early fraud warnings (made by the control endpoints) --------------------


@bp.get("/disputes/<did>")
@endpoint
def retrieve_dispute(
    sb: Sandbox, params: dict[str, Any], origin: Origin, did: str
) -> dict[str, Any]:
    dispute = sb.engine.find("dispute", unquote(did), "dispute", "dispute")
    return listing.expand(sb.store, dispute, params)


@bp.get("/disputes")
@endpoint
def list_disputes(sb: Sandbox, params: dict[str, Any], origin: Origin) -> dict[str, Any]:
    return _list_by_charge(sb, params, "dispute", "/v1/disputes")


@bp.get("/radar/early_fraud_warnings/<wid>")
@endpoint
def retrieve_fraud_warning(
    sb: Sandbox, params: dict[str, Any], origin: Origin, wid: str
) -> dict[str, Any]:
    kind = "radar.early_fraud_warning"
    return listing.expand(
        sb.store, sb.engine.find(kind, unquote(wid), kind, "early_fraud_warning"), params
    )


@bp.get("/radar/early_fraud_warnings")
@endpoint
def list_fraud_warnings(sb: Sandbox, params: dict[str, Any], origin: Origin) -> dict[str, Any]:
    return _list_by_charge(
        sb, params, "radar.early_fraud_warning", "/v1/radar/early_fraud_warnings"
    )


def _list_by_charge(sb: Sandbox, params: dict[str, Any], kind: str, url: str) -> dict[str, Any]:
    check_known(params, listing.PAGING | {"charge", "payment_intent"})
    charge, intent = get_str(params, "charge"), get_str(params, "payment_intent")
    items = listing.filtered(
        sb.store.all(kind),
        lambda o: (
            (charge is None or o["charge"] == charge)
            and (intent is None or o["payment_intent"] == intent)
        ),
    )
    return listing.expand(sb.store, listing.page(items, params, url, kind), params)


# -- Events -------------------------------------------------------------------------------


@bp.get("/events")
@endpoint
def list_events(sb: Sandbox, params: dict[str, Any], origin: Origin) -> dict[str, Any]:
    delivered = {d["event_id"] for d in sb.store.deliveries if d["ok"]}
    keep = listing.event_filter(params, delivered)
    items = listing.filtered(reversed(sb.store.events), keep)
    return listing.page(items, params, "/v1/events", "event")


@bp.get("/events/<eid>")
@endpoint
def retrieve_event(sb: Sandbox, params: dict[str, Any], origin: Origin, eid: str) -> dict[str, Any]:
    _no_params(params)
    event = sb.store.event(unquote(eid))
    if event is None:
        raise StripeError(
            f"No such event: '{unquote(eid)}'", status=404, code="resource_missing", param="id"
        )
    return event
