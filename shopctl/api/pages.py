"""`GET /checkout/success` and `GET /checkout/cancel`: where Stripe Checkout sends the buyer
back while the shop has no storefront of its own (CHECKOUT_RETURN; by default while
FRONTEND_URL is left at its development value).

The success page confirms the payment with Stripe first (services.payments.confirm),
then tells the truth about the order: paid, still processing (the page refreshes by
itself), not paid, or not confirmed yet. Plain server-rendered HTML, every value
escaped, no JavaScript and nothing from another origin (the CSP below says so).
"""

from __future__ import annotations

import logging
from functools import partial
from html import escape

from peewee import InterfaceError, OperationalError
from sanic import Blueprint, Request
from sanic.response import HTTPResponse, html

from shopctl.api.common import call, query
from shopctl.checkout_schemas import CheckoutCancel, CheckoutReturn
from shopctl.errors import InvalidInput, NotFound, ShopError
from shopctl.money import format_minor_units
from shopctl.services.payments.confirm import Confirmation, confirm_session, returned_order

log = logging.getLogger("shopctl.api")
api = Blueprint("pages", url_prefix="/checkout")

REFRESH_SECONDS = 3
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",  # the session id in our address stays here
}
STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:36rem;margin:2rem auto;padding:0 1rem}"
    "table{width:100%;border-collapse:collapse}td,th{padding:.4rem;text-align:left;"
    "border-bottom:1px solid #ddd}.num{text-align:right}.note{padding:.7rem;"
    "border-radius:.3rem;background:#eef}.ok{background:#e6f6e6}.warn{background:#fdf3d8}"
    ".bad{background:#fde2e2}a.button{display:inline-block;padding:.5rem 1rem;"
    "border:1px solid #447;border-radius:.3rem;text-decoration:none}"
)
FAILURES = {
    400: ("This link is not valid", "The address is missing something or was changed."),
    404: ("Order not found", "This shop has no order for this link."),
    503: ("Try again in a moment", "The shop cannot read its orders right now."),
    500: ("Something went wrong", "The shop could not show this page."),
}


@api.get("/success")
async def checkout_success(request: Request) -> HTTPResponse:
    return await _rendered(request, _success)


@api.get("/cancel")
async def checkout_cancel(request: Request) -> HTTPResponse:
    return await _rendered(request, _cancel)


async def _success(request: Request) -> str:
    session_id = query(request, CheckoutReturn).session_id
    settings, run_db = request.app.ctx.settings, partial(call, request)
    found = await confirm_session(settings, session_id, run_db, actor="checkout page")
    title, line, tone, refresh = _success_state(found)
    return _document(title, _note(line, tone) + _order(found), refresh=refresh)


async def _cancel(request: Request) -> str:
    order_id = str(query(request, CheckoutCancel).order_id)
    found = await call(request, returned_order, order_id)
    order = found.order
    url = (order["payment"] or {}).get("paymentUrl")
    if order["status"] != "UNPAID":
        title, line, tone, _ = _success_state(found)
        return _document(title, _note(line, tone) + _order(found))
    line = (
        "You left the payment page without paying. Your order is still reserved until "
        f"{_when(order['expiresAt'])}."
    )
    again = (
        f'<p><a class="button" href="{escape(url)}">Pay now</a></p>'
        if url
        else "<p>Start the payment again from the shop before then.</p>"
    )
    return _document("Checkout canceled", _note(line, "warn") + again + _order(found))


async def _rendered(request: Request, page) -> HTTPResponse:
    """The page, or a page that says plainly what went wrong (never a JSON envelope)."""
    try:
        return html(await page(request), headers=HEADERS)
    except InvalidInput:
        status = 400
    except NotFound:
        status = 404
    except (OperationalError, InterfaceError):
        status = 503
    except ShopError as exc:
        status = exc.status if exc.status in FAILURES else 500
    except Exception as exc:
        log.error("checkout page failed (request %s)", request.ctx.request_id, exc_info=exc)
        status = 500
    title, text = FAILURES[status]
    return html(_document(title, _note(text, "bad")), status=status, headers=HEADERS)


def _success_state(found: Confirmation) -> tuple[str, str, str, bool]:
    """(title, status line, tone, refresh) for what is known about the order now."""
    order = found.order
    status = order["status"]
    if status == "PAID":
        return "Thank you", "Payment received: your order is PAID.", "ok", False
    if status == "PROCESSING":
        return (
            "Payment processing",
            "Your payment is processing. This page checks again every few seconds.",
            "warn",
            True,
        )
    if status == "REFUNDED":
        return "Order refunded", "This order was paid, then refunded.", "warn", False
    if status == "FAILED":
        return "Payment failed", "The payment failed; start again from the shop.", "bad", False
    if status in ("EXPIRED", "CANCELED"):
        if found.late_outcome in ("refund_pending", "refunded"):
            line = (
                "Your payment arrived after the reservation ended and the goods were gone: "
                "it is refunded to you."
            )
            return "Payment refunded", line, "bad", False
        word = "expired" if status == "EXPIRED" else "was canceled"
        return f"Order {status.lower()}", f"This order {word} before it was paid.", "bad", False
    if found.in_review:
        line = (
            "Your payment arrived, but the shop is checking this payment before it confirms "
            "the order; it will contact you."
        )
        return "Payment being checked", line, "warn", False
    # UNPAID: what did Stripe say?
    if found.session_status == "open" and not found.unreachable:
        return "Not paid yet", "We have not received your payment yet.", "warn", False
    if found.session_status == "expired":
        return "Checkout expired", "This checkout expired before it was paid.", "bad", False
    if found.asked:
        line = "We could not confirm your payment with Stripe yet; this page checks again."
        return "Confirming your payment", line, "warn", True
    return "Confirming your payment", "Checking your payment with Stripe…", "warn", True


def _order(found: Confirmation) -> str:
    order = found.order
    currency = order["currency"]
    rows = "".join(
        f"<tr><td>{escape(item['productName'])}</td><td class=num>{item['quantity']}</td>"
        f"<td class=num>{_money(item['priceCents'], currency)}</td>"
        f"<td class=num>{_money(item['priceCents'] * item['quantity'], currency)}</td></tr>"
        for item in order["items"]
    )
    url = (order["payment"] or {}).get("paymentUrl")
    pay = (
        f'<p><a class="button" href="{escape(url)}">Pay now</a></p>'
        if url and order["status"] == "UNPAID" and found.session_status == "open"
        else ""
    )
    return (
        f"{pay}<p>Order <code id=order>{escape(order['id'])}</code>: "
        f"<strong id=order-status>{escape(order['status'])}</strong></p>"
        "<table><tr><th>Item</th><th class=num>Qty</th><th class=num>Price</th>"
        f"<th class=num>Amount</th></tr>{rows}<tr><th colspan=3>Total</th>"
        f"<th class=num id=total>{_money(order['amountCents'], currency)}</th></tr></table>"
    )


def _money(minor: int, currency: str) -> str:
    return escape(format_minor_units(minor, currency))


def _when(iso_time: str) -> str:
    """`2026-12-02T05:30:12.000Z` → `2026-12-02 05:30 UTC`."""
    return iso_time[:16].replace("T", " ") + " UTC"


def _note(text: str, tone: str) -> str:
    return f'<p id="status" class="note {tone}">{escape(text)}</p>'


def _document(title: str, body: str, *, refresh: bool = False) -> str:
    meta = f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">' if refresh else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width,initial-scale=1">{meta}'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>"
        f"<body><main><h1>{escape(title)}</h1>{body}</main></body></html>"
    )
