"""Only amounts Stripe can charge are sold: prices and order totals follow Stripe's
per-currency rules (shopctl/money.py), over real HTTP, on both databases.

Regressions pinned here: a product could be priced at 0.01 (Stripe refuses any payment
under 0.50 USD); "0.001" rounded to 0 and held stock that could never be paid; "1.2345"
KWD became 1235 fils, which Stripe refuses (three-decimal amounts end in 0); "١٢" was
read as the price 12.
"""

from __future__ import annotations

import pytest

from shopctl.models import Order, Product, StockMovement
from tests.orders_support import bearer, lines, make_product, make_user, stock_of
from tests.test_products_api import admin  # noqa: F401  (fixture)


def _create(server, headers, **body):
    return server.request("POST", "/product", json={"name": "Pin", **body}, headers=headers)


def _refused(response, path: str) -> str:
    assert response.status_code == 400, response.text
    errors = response.json()["error"]
    assert [e["path"] for e in errors] == [path]
    return errors[0]["message"]


@pytest.mark.parametrize(
    "body, path",
    [({"price": "0.01"}, "price"), ({"price": 0.49}, "price"), ({"priceCents": 49}, "priceCents"),
     ({"priceCents": 0}, "priceCents"), ({"price": "0"}, "price")],
)  # fmt: skip
def test_a_price_under_stripes_minimum_is_refused_naming_it(server, admin, body, path):  # noqa: F811
    message = _refused(_create(server, admin, quantity=5, **body), path)
    assert "Stripe's minimum charge in USD is 0.50 USD" in message
    assert Product.select().count() == 0 and StockMovement.select().count() == 0


def test_the_minimum_itself_is_a_price(server, admin):  # noqa: F811
    response = _create(server, admin, price="0.50")
    assert response.status_code == 201 and response.json()["data"]["priceCents"] == 50


def test_a_price_that_rounds_to_nothing_is_refused(server, admin):  # noqa: F811
    message = _refused(_create(server, admin, price="0.001", quantity=3), "price")
    assert message.startswith("is 0.00 USD;") and "0.50 USD" in message
    assert Product.select().count() == 0


def test_a_patch_under_the_minimum_changes_nothing(server, admin):  # noqa: F811
    pin = _create(server, admin, price="2.00").json()["data"]
    response = server.request(
        "PATCH", f"/product/{pin['id']}", json={"price": "0.2"}, headers=admin
    )
    assert "0.50 USD" in _refused(response, "price")
    assert Product.get_by_id(pin["id"]).price_cents == 200


@pytest.mark.parametrize(
    "price",
    ["\u0661\u0662.\u0665\u0660", "\u06f1\u06f2", "\uff11\uff12", "12.\uff15", "\u09e7\u09e8"],
)
def test_only_ascii_digits_are_read_as_a_price(server, admin, price):  # noqa: F811
    message = _refused(_create(server, admin, price=price), "price")
    assert "ASCII digits" in message
    assert Product.select().count() == 0


@pytest.fixture
def kwd_server(start_server):
    with start_server(env={"STRIPE_CURRENCY": "kwd"}) as server:
        yield server


def test_kwd_prices_are_on_stripes_ten_fils_step(kwd_server, settings):
    """KWD has three decimals, and Stripe charges it in steps of 0.010."""
    headers = bearer(settings, make_user("kwd-admin@example.com", role="ADMIN"))
    rounded = _create(kwd_server, headers, name="Dates", price="1.2345")
    assert rounded.status_code == 201, rounded.text
    assert (rounded.json()["data"]["priceCents"], rounded.json()["data"]["currency"]) == (
        1230,
        "kwd",
    )
    up = _create(kwd_server, headers, name="Figs", price="1.235").json()["data"]
    assert up["priceCents"] == 1240  # half-up, to the step
    message = _refused(_create(kwd_server, headers, name="Tea", priceCents=1235), "priceCents")
    assert "steps of 0.010 KWD" in message
    assert "0.000 KWD" in _refused(
        _create(kwd_server, headers, name="Salt", price="0.004"), "price"
    )
    assert Product.select().count() == 2


def test_an_order_total_under_the_minimum_is_refused_before_reserving(server, settings):
    """A product priced before these rules (20¢) can still be in the catalog: an order of one
    would be a session Stripe refuses, so it is refused here, naming the limit."""
    sticker = make_product("Sticker", price_cents=20, quantity=10)
    buyer = bearer(settings, make_user())
    for path in ("/order", "/order/pay-later"):
        response = server.request("POST", path, json={"items": lines((sticker, 2))}, headers=buyer)
        assert response.status_code == 400, response.text
        assert response.json()["message"] == (
            "The order total is 0.40 USD; Stripe's minimum charge in USD is 0.50 USD"
        )
    assert stock_of(sticker) == 10 and Order.select().count() == 0
    enough = server.request(
        "POST", "/order/pay-later", json={"items": lines((sticker, 3))}, headers=buyer
    )
    assert enough.status_code == 201 and stock_of(sticker) == 7


def test_an_order_total_over_one_payment_is_a_400_naming_the_limit(server, settings):
    yacht = make_product("Yacht", price_cents=99_999_999, quantity=3)
    buyer = bearer(settings, make_user())
    response = server.request(
        "POST", "/order/pay-later", json={"items": lines((yacht, 2))}, headers=buyer
    )
    assert response.status_code == 400
    assert "at most 999999.99 USD" in response.json()["message"]
    assert stock_of(yacht) == 3 and Order.select().count() == 0
