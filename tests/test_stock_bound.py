"""Stock arithmetic cannot overflow: stock is bounded so that every unit out in orders still
fits in the 32-bit column when it comes back, on both databases, over real HTTP and the CLI.

Regression: stock set to 2,147,483,647 (the column's maximum) with units out in orders made
the cancel a 500 ("integer out of range") and failed `orders expire` on every run.
"""

from __future__ import annotations

import json

import pytest

from shopctl.models import Order, OrderItem, Product, new_id, utcnow
from tests.orders_support import (
    assert_ledger_consistent,
    bearer,
    lines,
    make_overdue,
    make_product,
    make_user,
    stock_of,
)
from tests.test_products_api import admin  # noqa: F401  (fixture)

BOUND = 1_000_000_000
COLUMN_MAX = 2**31 - 1


def _order(server, buyer, product, units: int) -> str:
    response = server.request(
        "POST", "/order/pay-later", json={"items": lines((product, units))}, headers=buyer
    )
    assert response.status_code == 201, response.text
    return response.json()["data"]["orderId"]


def test_stock_at_its_bound_with_units_out_comes_back_on_cancel_and_expiry(
    server,
    admin,  # noqa: F811
    settings,
    cli,
):
    mug = make_product("Mug", price_cents=1250, quantity=10)
    buyer = bearer(settings, make_user())
    canceled, expiring = _order(server, buyer, mug, 4), _order(server, buyer, mug, 6)

    too_much = server.request(
        "PATCH", f"/product/{mug.id}", json={"quantity": COLUMN_MAX}, headers=admin
    )
    assert too_much.status_code == 400, too_much.text
    [error] = too_much.json()["error"]
    assert error["path"] == "quantity" and "at most 1,000,000,000" in error["message"]
    refused = cli("products", "set-stock", mug.id, str(BOUND + 1), "--yes")
    assert refused.exit_code == 2 and "1,000,000,000" in refused.output
    assert stock_of(mug) == 0

    assert cli("products", "set-stock", mug.id, str(BOUND), "--yes").exit_code == 0
    cancel = server.request("POST", f"/order/{canceled}/cancel", headers=buyer)
    assert cancel.status_code == 200, cancel.text
    assert stock_of(mug) == BOUND + 4

    make_overdue(Order.get_by_id(expiring))
    expired = cli("orders", "expire", "--json")
    assert expired.exit_code == 0, expired.output
    assert json.loads(expired.output)["expired"] == 1
    assert stock_of(mug) == BOUND + 10
    assert_ledger_consistent()
    assert cli("doctor").exit_code == 0


@pytest.mark.parametrize("field", ["quantity"])
def test_creating_over_the_bound_is_refused_naming_it(server, admin, field):  # noqa: F811
    body = {"name": "Crate", "priceCents": 900, field: BOUND + 1}
    response = server.request("POST", "/product", json=body, headers=admin)
    assert response.status_code == 400
    assert "at most 1,000,000,000" in response.json()["error"][0]["message"]
    ok = server.request("POST", "/product", json={**body, field: BOUND}, headers=admin)
    assert ok.status_code == 201 and ok.json()["data"]["quantity"] == BOUND
    assert Product.select().count() == 1


def test_a_seed_file_over_the_bound_inserts_nothing(cli, tmp_path):
    catalog = tmp_path / "catalog.json"
    catalog.write_text(json.dumps([{"name": "Crate", "priceCents": 900, "quantity": BOUND + 1}]))
    result = cli("products", "seed", "--file", str(catalog))
    assert result.exit_code == 1 and "1,000,000,000" in result.output  # a bad file: exit 1
    assert Product.select().count() == 0


def _held_by_orders(product: Product, units: int) -> None:
    """Units out in orders, as a great many orders would hold them (one row stands in)."""
    user, now = make_user(f"many-{new_id()[:8]}@example.com"), utcnow()
    order = Order.create(
        user=user.id,
        status="UNPAID",
        amount_cents=100,
        currency="usd",
        expires_at=now,
        stock_released=False,
        pay_later=True,
    )
    OrderItem.create(
        order=order.id,
        product=product.id,
        product_name=product.name,
        quantity=units,
        price_cents=100,
    )


def test_setting_stock_leaves_room_for_every_unit_held_by_orders(server, admin, cli):  # noqa: F811
    """Whatever the number of orders out, what they hold plus the stock fits the column."""
    crate = make_product("Crate", price_cents=900, quantity=0)
    _held_by_orders(crate, 1_500_000_000)
    room = COLUMN_MAX - 1_500_000_000
    refused = server.request(
        "PATCH", f"/product/{crate.id}", json={"quantity": room + 1}, headers=admin
    )
    assert refused.status_code == 400
    assert f"at most {room:,}" in refused.json()["error"][0]["message"]
    assert cli("products", "set-stock", crate.id, str(room + 1), "--yes").exit_code == 2
    assert cli("products", "set-stock", crate.id, str(room), "--yes").exit_code == 0
    assert stock_of(crate) == room


def test_doctor_names_stock_from_before_the_bound_that_has_no_room(cli):
    """A shop upgraded with stock at the column's maximum and units out: doctor says which
    product, before a cancel or expiry of its orders fails."""
    crate = make_product("Crate", price_cents=900, quantity=0)
    Product.update(quantity=COLUMN_MAX).where(Product.id == crate.id).execute()
    _held_by_orders(crate, 5)

    def stock_room() -> dict:
        checks = json.loads(cli("doctor", "--json").output)["checks"]
        return next(check for check in checks if check["name"] == "stock room")

    crowded = stock_room()
    assert not crowded["ok"] and "Crate: stock 2,147,483,647 + 5 held" in crowded["detail"]
    assert "set-stock" in crowded["hint"]
    assert cli("products", "set-stock", crate.id, str(BOUND), "--yes").exit_code == 0
    assert stock_room()["ok"]
