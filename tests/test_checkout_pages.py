"""Checkout returns to pages `shopctl serve` serves itself, which confirm the payment with
Stripe (its fulfilment guide: retrieve the session on the buyer's return, fulfil if paid)
through the webhook's own handler; and `GET /payment/:id/status?sync=true` does the same
for storefronts with pages of their own.

Regression for issue 17: after Pay the buyer landed on `http://localhost:3000/payment/…`,
a page nobody served, and believed the payment had failed.
"""

from __future__ import annotations

import re
import threading
from dataclasses import replace
from html import unescape

import httpx
import pytest

from shopctl.config import load_settings
from shopctl.errors import ConfigError
from tests.orders_support import assert_ledger_consistent
from tests.payments_support import buyer, history, payment_of, product, status_of, wait_for

ORDER_ID = "3f2b6c1e-8a4d-4f7e-9b1a-2c3d4e5f6a7b"


def page(stack, path: str) -> httpx.Response:
    return stack.server.http.get(path)


def status_line(response: httpx.Response) -> str:
    """What the page's status line says, as a reader sees it."""
    match = re.search(r'id="status"[^>]*>(.*?)</', response.text, re.S)
    assert match, response.text
    return unescape(re.sub(r"<[^>]+>", "", match.group(1))).strip()


def says_paid(response: httpx.Response) -> bool:
    return re.search(r"\bPAID\b", status_line(response)) is not None


def success_page(stack, session_id: str) -> httpx.Response:
    return page(stack, f"/checkout/success?session_id={session_id}")


def paid_without_webhooks(stack, settings, name: str = "Mug", outcome: str = "succeeded"):
    """An order paid at the sandbox while no webhook reaches us: only the page can tell."""
    stack.configure(webhooks_enabled=False)
    shopper, mug = buyer(stack, settings), product(name, quantity=3)
    placed = shopper.order_now(mug, 2)
    stack.pay(placed["sessionId"], outcome)
    return shopper, mug, placed


# --- where Checkout sends the buyer back ---------------------------------------------------


def test_checkout_returns_to_shopctls_own_pages_by_default(stripe_stack, settings):
    placed = buyer(stripe_stack, settings).order_now(product())
    session = stripe_stack.stripe().v1.checkout.sessions.retrieve(placed["sessionId"])
    own = stripe_stack.server.url
    assert session.success_url == f"{own}/checkout/success?session_id={{CHECKOUT_SESSION_ID}}"
    assert session.cancel_url == f"{own}/checkout/cancel?order_id={placed['orderId']}"


def test_a_storefront_of_ones_own_keeps_its_pages(settings):
    from shopctl.services.payments.checkout import return_urls

    shop = replace(settings, frontend_urls=("https://shop.example",))
    assert return_urls(shop, "http://api.internal:8000", ORDER_ID) == (
        "https://shop.example/payment/success?session_id={CHECKOUT_SESSION_ID}"
        f"&orderId={ORDER_ID}",
        f"https://shop.example/payment/cancel?orderId={ORDER_ID}",
    )
    builtin = replace(shop, checkout_return="builtin")
    assert return_urls(builtin, "http://api:8000", ORDER_ID)[1] == (
        f"http://api:8000/checkout/cancel?order_id={ORDER_ID}"
    )
    frontend = replace(settings, checkout_return="frontend")
    assert return_urls(frontend, "http://api:8000", ORDER_ID)[0].startswith(
        "http://localhost:3000/payment/success?"
    )


def test_checkout_return_is_validated(monkeypatch):
    monkeypatch.setenv("CHECKOUT_RETURN", "Builtin")
    assert load_settings(env_file=None).checkout_return == "builtin"
    monkeypatch.setenv("CHECKOUT_RETURN", "storefront")
    with pytest.raises(ConfigError, match="CHECKOUT_RETURN must be auto, builtin or frontend"):
        load_settings(env_file=None)


# --- the success page ---------------------------------------------------------------------


def test_the_success_page_confirms_with_stripe_before_any_webhook(stripe_stack, settings):
    _, _, placed = paid_without_webhooks(stripe_stack, settings, name="Mug & <Co>")
    assert status_of(placed["orderId"]) == "UNPAID"  # no webhook came

    response = success_page(stripe_stack, placed["sessionId"])

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert says_paid(response)
    assert placed["orderId"] in response.text
    assert "Mug &amp; &lt;Co&gt;" in response.text and "<Co>" not in response.text
    assert "25.00 USD" in response.text  # 2 x 12.50
    assert "<script" not in response.text and "http-equiv" not in response.text
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert status_of(placed["orderId"]) == "PAID"
    assert payment_of(placed["orderId"]).status == "PAID"
    assert history(placed["orderId"]) == [(None, "UNPAID"), ("UNPAID", "PAID")]
    assert_ledger_consistent()


def test_the_webhook_after_the_page_changes_nothing(stripe_stack, settings):
    _, _, placed = paid_without_webhooks(stripe_stack, settings)
    assert says_paid(success_page(stripe_stack, placed["sessionId"]))
    events = stripe_stack.stripe().v1.events.list({"type": "checkout.session.completed"})
    (completed,) = events.data
    stripe_stack.control("POST", f"/events/{completed.id}/resend")

    from shopctl.models import StripeEvent

    wait_for(lambda: StripeEvent.get_or_none(StripeEvent.id == completed.id), what="webhook")
    assert StripeEvent.get_by_id(completed.id).status == "PROCESSED"
    assert history(placed["orderId"]) == [(None, "UNPAID"), ("UNPAID", "PAID")]
    assert says_paid(success_page(stripe_stack, placed["sessionId"]))


def test_page_and_webhooks_racing_make_one_transition(stripe_stack, settings):
    """Webhooks on: the sandbox delivers while the buyer's page (several tabs) confirms."""
    shopper, mug = buyer(stripe_stack, settings), product(quantity=3)
    placed = shopper.order_now(mug)
    stripe_stack.pay(placed["sessionId"])
    pages: list[httpx.Response] = []

    def tab() -> None:
        pages.append(success_page(stripe_stack, placed["sessionId"]))

    tabs = [threading.Thread(target=tab) for _ in range(4)]
    for tab in tabs:
        tab.start()
    for tab in tabs:
        tab.join()
    assert [response.status_code for response in pages] == [200] * 4
    wait_for(lambda: status_of(placed["orderId"]) == "PAID", what="paid")
    assert history(placed["orderId"]) == [(None, "UNPAID"), ("UNPAID", "PAID")]
    assert_ledger_consistent()


def test_while_the_payment_processes_the_page_says_so_and_refreshes(stripe_stack, settings):
    _, _, placed = paid_without_webhooks(stripe_stack, settings, outcome="async_pending")

    response = success_page(stripe_stack, placed["sessionId"])

    assert "processing" in status_line(response).lower()
    assert re.search(r'<meta http-equiv="refresh" content="\d+">', response.text)
    assert status_of(placed["orderId"]) == "PROCESSING"
    stripe_stack.pay(placed["sessionId"], "async_succeeded")

    def paid_page():
        response = success_page(stripe_stack, placed["sessionId"])
        return response if says_paid(response) else None

    paid = wait_for(paid_page, what="the page to see the delayed payment succeed")
    assert "http-equiv" not in paid.text
    assert status_of(placed["orderId"]) == "PAID"


def test_when_stripe_cannot_be_reached_the_page_says_it_will_check_again(stripe_stack, settings):
    _, _, placed = paid_without_webhooks(stripe_stack, settings)
    stripe_stack.configure(fail_next=3)  # the first try and the client's two retries

    response = success_page(stripe_stack, placed["sessionId"])

    assert response.status_code == 200
    assert "could not confirm" in status_line(response).lower()
    assert 'http-equiv="refresh"' in response.text
    assert status_of(placed["orderId"]) == "UNPAID"
    assert "Traceback" not in stripe_stack.server.output()


def test_an_open_session_is_not_shown_as_paid(stripe_stack, settings):
    placed = buyer(stripe_stack, settings).order_now(product())
    response = success_page(stripe_stack, placed["sessionId"])
    assert "not received" in status_line(response).lower()
    assert f'href="{placed["paymentUrl"]}"' in response.text
    assert status_of(placed["orderId"]) == "UNPAID"


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("", 400),
        ("?session_id=", 400),
        ("?session_id=<script>", 400),
        ("?session_id=cs_test_nobodys", 404),
        ("?session_id=cs_test_a&extra=1", 400),
    ],
)
def test_bad_or_unknown_sessions_get_a_clear_page(stripe_stack, query, status):
    response = page(stripe_stack, f"/checkout/success{query}")
    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/html")
    assert "<script>" not in response.text


# --- the cancel page ----------------------------------------------------------------------


def test_the_cancel_page_says_the_order_is_reserved_and_offers_to_pay_again(stripe_stack, settings):
    placed = buyer(stripe_stack, settings).order_now(product())
    response = page(stripe_stack, f"/checkout/cancel?order_id={placed['orderId']}")
    assert response.status_code == 200
    line = status_line(response)
    assert "still reserved" in line
    assert placed["expiresAt"][:16].replace("T", " ") in line  # to the minute, UTC
    assert f'href="{placed["paymentUrl"]}"' in response.text
    assert status_of(placed["orderId"]) == "UNPAID"


def test_the_cancel_page_of_a_paid_order_says_it_is_paid(stripe_stack, settings):
    _, _, placed = paid_without_webhooks(stripe_stack, settings)
    assert says_paid(success_page(stripe_stack, placed["sessionId"]))
    response = page(stripe_stack, f"/checkout/cancel?order_id={placed['orderId']}")
    assert says_paid(response)
    assert f'href="{placed["paymentUrl"]}"' not in response.text


def test_the_cancel_page_of_an_unknown_order_is_404(stripe_stack):
    assert page(stripe_stack, f"/checkout/cancel?order_id={ORDER_ID}").status_code == 404
    assert page(stripe_stack, "/checkout/cancel?order_id=nope").status_code == 400


# --- the owner's sync ---------------------------------------------------------------------


def test_status_sync_confirms_with_stripe_for_the_owner(stripe_stack, settings):
    shopper, _, placed = paid_without_webhooks(stripe_stack, settings)
    path = f"/payment/{placed['paymentId']}/status"
    assert shopper.get(path).json()["data"]["orderStatus"] == "UNPAID"  # no sync: as stored

    synced = shopper.get(path, params={"sync": "true"})

    assert synced.status_code == 200, synced.text
    assert synced.json()["data"]["orderStatus"] == "PAID"
    assert synced.json()["data"]["status"] == "PAID"
    assert history(placed["orderId"]) == [(None, "UNPAID"), ("UNPAID", "PAID")]


def test_status_sync_is_rate_limited_per_payment(stripe_stack, settings):
    shopper = buyer(stripe_stack, settings)
    placed = shopper.order_now(product())
    path = f"/payment/{placed['paymentId']}/status"
    first = shopper.get(path, params={"sync": "true"})
    again = shopper.get(path, params={"sync": "true"})
    assert first.status_code == 200
    assert again.status_code == 429
    assert int(again.headers["retry-after"]) >= 1
    assert shopper.get(path).status_code == 200  # reading what is stored is not limited


def test_status_sync_is_only_for_the_owner(stripe_stack, settings):
    placed = buyer(stripe_stack, settings).order_now(product())
    stranger = buyer(stripe_stack, settings, email="stranger@example.com")
    path = f"/payment/{placed['paymentId']}/status"
    assert stranger.get(path, params={"sync": "true"}).status_code == 404
    assert stranger.get(path, params={"sync": "maybe"}).status_code == 400


def test_status_sync_says_when_stripe_cannot_be_reached(stripe_stack, settings):
    shopper, _, placed = paid_without_webhooks(stripe_stack, settings)
    stripe_stack.configure(fail_next=3)
    response = shopper.get(f"/payment/{placed['paymentId']}/status", params={"sync": "true"})
    assert response.status_code == 502
    assert "Stripe" in response.json()["message"]
    assert status_of(placed["orderId"]) == "UNPAID"


def test_a_payment_flagged_for_review_is_not_shown_as_unconfirmed_forever(stripe_stack, settings):
    """The handler's checks refused what Stripe said (amount, currency, ids): the page says
    the shop is checking the payment, and neither refreshes nor asks Stripe again."""
    from shopctl.models import PaymentReview

    _, _, placed = paid_without_webhooks(stripe_stack, settings)
    payment = payment_of(placed["orderId"])
    PaymentReview.create(payment=payment.id, order=placed["orderId"], reason="amount differs")
    stripe_stack.configure(fail_next=3)  # were Stripe asked, this page would say so

    response = success_page(stripe_stack, placed["sessionId"])

    assert "checking this payment" in status_line(response)
    assert "http-equiv" not in response.text
    assert status_of(placed["orderId"]) == "UNPAID"
