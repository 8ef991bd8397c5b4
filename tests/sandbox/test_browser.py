"""The hosted checkout page in a real headless Chromium (Debian's, driven by Playwright)."""

from __future__ import annotations

from tests.sandbox.helpers import session_params


def test_pay_in_the_browser_lands_on_success_and_the_webhook_arrives(client, listener, page):
    success = f"{listener.url}/success?session_id={{CHECKOUT_SESSION_ID}}"
    session = client.v1.checkout.sessions.create(
        session_params(success_url=success, cancel_url=f"{listener.url}/cancel")
    )

    page.goto(session.url)
    assert page.locator("#total").inner_text() == "30.00 USD"
    assert page.get_by_text("Mug & <Co>").count() == 1
    assert page.get_by_role("link", name="Cancel").get_attribute("href") == (
        f"{listener.url}/cancel"
    )
    with page.expect_navigation():
        page.get_by_role("button", name="Pay", exact=True).click()

    assert page.url == f"{listener.url}/success?session_id={session.id}"
    assert listener.wait_types(4, session.payment_intent)[-1] == "checkout.session.completed"
    assert client.v1.checkout.sessions.retrieve(session.id).payment_status == "paid"
    page.goto(session.url)
    assert "complete" in page.locator("#status").inner_text()


def test_decline_then_delayed_payment_in_the_browser(client, listener, page):
    session = client.v1.checkout.sessions.create(
        session_params(success_url=f"{listener.url}/success")
    )
    page.goto(session.url)

    page.get_by_role("button", name="Decline").click()
    assert "declined" in page.locator("#status").inner_text()
    page.get_by_role("button", name="Pay (delayed)").click()
    assert "processing" in page.locator("#status").inner_text()
    page.get_by_role("button", name="Complete delayed payment").click()
    assert "paid" in page.locator("#status").inner_text()

    assert listener.wait_types(7, session.payment_intent) == [
        "payment_intent.created",
        "payment_intent.payment_failed",
        "payment_intent.processing",
        "checkout.session.completed",
        "payment_intent.succeeded",
        "charge.succeeded",
        "checkout.session.async_payment_succeeded",
    ]


def test_an_expired_session_page_says_so(client, sandbox, page):
    session = client.v1.checkout.sessions.create(session_params())
    client.v1.checkout.sessions.expire(session.id)

    page.goto(f"{sandbox.url}/checkout/pay/{session.id}")
    assert "expired" in page.locator("#status").inner_text()
    assert page.get_by_role("button").count() == 0
