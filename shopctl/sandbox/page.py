"""The hosted checkout page: plain HTML forms, no JavaScript, no external assets."""

from __future__ import annotations

from decimal import Decimal
from html import escape
from typing import TYPE_CHECKING, Any

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, html, redirect

from shopctl.money import currency as currency_rules

from . import checkout
from .params import StripeError

if TYPE_CHECKING:
    from .instance import Sandbox

bp = Blueprint("checkout_page", url_prefix="/checkout/pay")
ACTIONS = {
    "pay": "succeeded",
    "decline": "declined",
    "pay_delayed": "async_pending",
    "complete_delayed": "async_succeeded",
    "fail_delayed": "async_failed",
}
_STYLE = """body{font-family:system-ui,sans-serif;max-width:34rem;margin:2rem auto;padding:0 1rem}
table{width:100%;border-collapse:collapse}td,th{padding:.4rem;border-bottom:1px solid #ddd}
.num{text-align:right}.note{padding:.6rem;border-radius:.3rem;background:#eef}
.error{background:#fdd}form{display:inline}button{margin:.3rem .3rem 0 0;padding:.5rem 1rem}"""


def money(amount: int, currency: str) -> str:
    places = currency_rules(currency).exponent
    return f"{Decimal(amount).scaleb(-places):,.{places}f} {currency.upper()}"


def _session(request: Request, sid: str) -> dict[str, Any] | None:
    sb: Sandbox = request.app.ctx.sandbox
    session = sb.store.get(sid, "checkout.session")
    return checkout.refresh(sb.engine, session) if session else None


@bp.get("/<sid>")
async def show(request: Request, sid: str) -> HTTPResponse:
    session = _session(request, sid)
    if session is None:
        return html(_document("Not found", "<p>No such Checkout Session.</p>"), status=404)
    sb: Sandbox = request.app.ctx.sandbox
    intent = sb.store.get(session["payment_intent"], "payment_intent") or {}
    body = _items(sb.store.line_items.get(sid, []), session) + _state(session, intent)
    return html(_document(f"Pay {money(session['amount_total'], session['currency'])}", body))


@bp.post("/<sid>/<action>")
async def act(request: Request, sid: str, action: str) -> HTTPResponse:
    sb: Sandbox = request.app.ctx.sandbox
    if action not in ACTIONS or sb.store.get(sid, "checkout.session") is None:
        return html(_document("Not found", "<p>No such page.</p>"), status=404)
    try:
        session = checkout.pay(sb.engine, sid, ACTIONS[action])
    except StripeError:
        return redirect(f"/checkout/pay/{sid}", status=303)  # the page says why
    if action == "pay" and session["success_url"]:
        return redirect(session["success_url"].replace("{CHECKOUT_SESSION_ID}", sid), status=303)
    return redirect(f"/checkout/pay/{sid}", status=303)


def _items(items: list[dict[str, Any]], session: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{escape(i['description'])}</td><td class=num>{i['quantity']}</td>"
        f"<td class=num>{money(i['price']['unit_amount'], i['currency'])}</td>"
        f"<td class=num>{money(i['amount_total'], i['currency'])}</td></tr>"
        for i in items
    )
    total = money(session["amount_total"], session["currency"])
    return (
        f"<table><tr><th>Item</th><th class=num>Qty</th><th class=num>Price</th>"
        f"<th class=num>Amount</th></tr>{rows}<tr><th colspan=3>Total</th>"
        f"<th class=num id=total>{total}</th></tr></table>"
    )


def _state(session: dict[str, Any], intent: dict[str, Any]) -> str:
    status, sid = session["status"], escape(session["id"])
    if status == "expired":
        return "<p class=note id=status>This Checkout Session has expired.</p>" + _link(
            session["cancel_url"], "Return to the shop"
        )
    if status == "complete":
        return _complete(session, intent)
    error = intent.get("last_payment_error") or {}
    note = (
        (f"<p class='note error' id=status>{escape(error.get('message') or '')} Try again.</p>")
        if error
        else ""
    )
    cancel = _link(session["cancel_url"], "Cancel")
    return (
        f"{note}<p>Sandbox card 4242 4242 4242 4242 — choose what the bank says:</p>"
        f"{_button(sid, 'pay', 'Pay')}{_button(sid, 'decline', 'Decline')}"
        f"{_button(sid, 'pay_delayed', 'Pay (delayed)')}{cancel}"
    )


def _complete(session: dict[str, Any], intent: dict[str, Any]) -> str:
    sid = escape(session["id"])
    back = _link(
        (session["success_url"] or "").replace("{CHECKOUT_SESSION_ID}", session["id"]),
        "Return to the shop",
    )
    if intent.get("status") == "processing":
        return (
            "<p class=note id=status>Your delayed payment is processing.</p>"
            f"{_button(sid, 'complete_delayed', 'Complete delayed payment')}"
            f"{_button(sid, 'fail_delayed', 'Fail delayed payment')}{back}"
        )
    if session["payment_status"] == "paid":
        return "<p class=note id=status>This Checkout Session is complete: paid.</p>" + back
    return (
        "<p class='note error' id=status>This Checkout Session is complete, but the delayed "
        "payment failed.</p>" + back
    )


def _button(sid: str, action: str, label: str) -> str:
    return (
        f"<form method=post action='/checkout/pay/{sid}/{action}'>"
        f"<button type=submit name=action value={action}>{escape(label)}</button></form>"
    )


def _link(url: str | None, label: str) -> str:
    return f"<p><a href='{escape(url, quote=True)}'>{escape(label)}</a></p>" if url else ""


def _document(title: str, body: str) -> str:
    return (
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{escape(title)}"
        f"</title><meta name=viewport content='width=device-width,initial-scale=1'>"
        f"<style>{_STYLE}</style></head><body><h1>{escape(title)}</h1>"
        f"<p><small>Stripe sandbox (test mode)</small></p>{body}</body></html>"
    )
