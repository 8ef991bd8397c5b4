"""The newcomer's whole journey in a real browser (Debian's Chromium, driven by Playwright):
sign up and log in through the API, order, pay on the sandbox's hosted page, and land on
shopctl's own success page, which says PAID. Screenshots are kept as artifacts.

Regression for issue 17: Pay used to end on `http://localhost:3000/payment/success…`,
"This site can't be reached", and the buyer believed the payment had failed.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.payments_support import product, status_of, wait_status

# Screenshots of the pages the buyer saw: SHOPCTL_ARTIFACTS, else .artifacts/ (git ignores it).
ARTIFACTS = Path(os.environ.get("SHOPCTL_ARTIFACTS") or Path(__file__).parent.parent / ".artifacts")


@pytest.fixture
def keep(request, tmp_path):
    """`keep(page, "name")`: a full-page screenshot in the test's tmp dir, copied to the
    artifacts folder; the path is recorded in the test report (junit `screenshot`)."""

    def shoot(page, name: str) -> Path:
        shot = tmp_path / f"{name}.png"
        page.screenshot(path=str(shot), full_page=True)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        kept = ARTIFACTS / f"{request.node.name.replace('[', '-').rstrip(']')}-{name}.png"
        shutil.copyfile(shot, kept)
        request.node.user_properties.append(("screenshot", str(kept)))
        print(f"screenshot: {kept}")
        return kept

    return shoot


def _order_as_a_new_buyer(stack) -> dict:
    """Sign up, log in and order one mug, all through the API, as the README does."""
    http, mug = stack.server.http, product("Mug & <Co>", quantity=3)
    credentials = {"email": "newcomer@example.com", "password": "Buyer123!"}
    assert http.post("/api/v1/user", json=credentials).status_code == 201
    login = http.post("/api/v1/auth/login", json=credentials)
    token = login.json()["data"]["accessToken"]
    http.cookies.clear()  # the order goes by bearer token, as from a second shell
    placed = http.post(
        "/api/v1/order",
        json={"items": [{"productId": mug.id, "quantity": 2}]},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert placed.status_code == 201, placed.text
    return placed.json()["data"]


def test_pay_in_the_browser_ends_on_shopctls_success_page_showing_paid(stripe_stack, page, keep):
    order = _order_as_a_new_buyer(stripe_stack)
    page.goto(order["paymentUrl"])
    assert page.locator("#total").inner_text() == "25.00 USD"

    with page.expect_navigation():
        page.get_by_role("button", name="Pay", exact=True).click()

    assert page.url == (
        f"{stripe_stack.server.url}/checkout/success?session_id={order['sessionId']}"
    )
    assert "PAID" in page.locator("#status").inner_text()
    assert page.locator("#order").inner_text() == order["orderId"]
    assert page.locator("#order-status").inner_text() == "PAID"
    assert page.locator("#total").inner_text() == "25.00 USD"
    assert page.get_by_text("Mug & <Co>").count() == 1
    assert keep(page, "success").stat().st_size > 0
    assert status_of(order["orderId"]) == "PAID"


def test_cancel_then_pay_again_from_the_cancel_page(stripe_stack, page, keep):
    order = _order_as_a_new_buyer(stripe_stack)
    page.goto(order["paymentUrl"])
    page.get_by_role("link", name="Cancel").click()

    assert page.url == f"{stripe_stack.server.url}/checkout/cancel?order_id={order['orderId']}"
    assert "still reserved" in page.locator("#status").inner_text()
    keep(page, "cancel")
    page.get_by_role("link", name="Pay now").click()
    assert page.url == order["paymentUrl"]
    with page.expect_navigation():
        page.get_by_role("button", name="Pay", exact=True).click()

    assert "PAID" in page.locator("#status").inner_text()
    wait_status(order["orderId"], "PAID")
