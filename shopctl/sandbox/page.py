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
# Left empty, Pay ships to the sandbox's test address (sandbox/shipping.py).
ADDRESS_FIELDS = (
    ("name", "Name"),
    ("line1", "Address"),
    ("line2", "Address line 2"),
    ("city", "City"),
    ("postal_code", "Postal code"),
    ("state", "State"),
    ("phone", "Phone"),
)
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
    names = {
        option["shipping_rate"]: (sb.store.get(option["shipping_rate"], "shipping_rate") or {})
        for option in session.get("shipping_options") or []
    }
    names = {rate: found.get("display_name", "") for rate, found in names.items()}
    body = _items(sb.store.line_items.get(sid, []), session) + _state(session, intent, names)
    return html(_document(f"Pay {money(session['amount_total'], session['currency'])}", body))


@bp.post("/<sid>/<action>")
async def act(request: Request, sid: str, action: str) -> HTTPResponse:
    sb: Sandbox = request.app.ctx.sandbox
    if action not in ACTIONS or sb.store.get(sid, "checkout.session") is None:
        return html(_document("Not found", "<p>No such page.</p>"), status=404)
    try:
        session = checkout.pay(sb.engine, sid, ACTIONS[action], choice=_choice(request))
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


def _state(session: dict[str, Any], intent: dict[str, Any], rate_names: dict[str, str]) -> str:
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
    buttons = "".join(
        f"<button type=submit formaction='/checkout/pay/{sid}/{action}'>{label}</button>"
        for action, label in (
            ("pay", "Pay"),
            ("decline", "Decline"),
            ("pay_delayed", "Pay (delayed)"),
        )
    )
    shipping = _shipping_form(session, rate_names)
    return (
        f"{note}<form method=post action='/checkout/pay/{sid}/pay'>{shipping}"
        f"<p>Sandbox card 4242 4242 4242 4242 — choose what the bank says:</p>{buttons}</form>"
        f"{cancel}"
    )


def _shipping_form(session: dict[str, Any], rate_names: dict[str, str]) -> str:
    """The address fields (when the session collects one) and the rates, first one checked."""
    html_parts = []
    collection = session.get("shipping_address_collection")
    if collection:
        fields = "".join(
            f"<label>{label} <input name={name}></label><br>" for name, label in ADDRESS_FIELDS
        )
        countries = "".join(
            f"<option>{escape(code)}</option>" for code in collection["allowed_countries"]
        )
        html_parts.append(
            f"<fieldset id=shipping-address><legend>Shipping address</legend>{fields}"
            f"<label>Country <select name=country>{countries}</select></label></fieldset>"
        )
    options = session.get("shipping_options") or []
    if options:
        radios = "".join(
            f"<label><input type=radio name=shipping_rate value={escape(o['shipping_rate'])}"
            f"{' checked' if i == 0 else ''}> {escape(rate_names.get(o['shipping_rate'], ''))} "
            f"{money(o['shipping_amount'], session['currency'])}</label><br>"
            for i, o in enumerate(options)
        )
        html_parts.append(
            f"<fieldset id=shipping-rates><legend>Shipping</legend>{radios}</fieldset>"
        )
    return "".join(html_parts)


def _choice(request: Request) -> dict[str, Any]:
    """The buyer's shipping choice from the page's form (sandbox/shipping.py reads it)."""
    form = request.form or {}

    def value(key: str) -> str | None:
        return (form.get(key) or "").strip() or None

    choice: dict[str, Any] = {"shipping_rate": value("shipping_rate"), "phone": value("phone")}
    if value("line1") or value("name"):
        address = {key: value(key) for key in ("line1", "line2", "city", "postal_code", "state")}
        address["country"] = value("country")
        choice["shipping_details"] = {"name": value("name"), "address": address}
    return choice


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
