"""No buyer can hoard the stock (issue 16), over real HTTP on both databases.

Regressions pinned: one new account reserved every unit of three products with as many
pay-later orders as it liked; an order repeating a line 100 times got a single line of
1,000,000 units past the 10,000-per-line limit; nothing limited how fast one user could
place orders.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from shopctl.config import Settings
from shopctl.models import Order, Product
from shopctl.schemas import MAX_LINE_QUANTITY
from tests.conftest import LIMIT_DEFAULTS
from tests.orders_support import assert_ledger_consistent, bearer, make_product, make_user

DEFAULTS = Settings()


@pytest.fixture
def limited(start_server):
    """A server with the default per-buyer limits (the suite raises them: conftest)."""
    with start_server(env=LIMIT_DEFAULTS) as server:
        yield server


def _pay_later(server, headers, items) -> httpx.Response:
    return server.request("POST", "/order/pay-later", json={"items": items}, headers=headers)


def _line(product, quantity: int = 1) -> dict:
    return {"productId": product.id, "quantity": quantity}


def test_a_sixth_open_order_is_refused_and_reserves_nothing(limited, settings):
    server = limited
    assert DEFAULTS.max_open_orders == 5
    buyer, product = make_user(), make_product("Mug", quantity=100)
    headers = bearer(settings, buyer)
    for _ in range(5):
        assert _pay_later(server, headers, [_line(product)]).status_code == 201
    refused = _pay_later(server, headers, [_line(product, 3)])
    assert refused.status_code == 409, refused.text
    body = refused.json()
    assert body["success"] is False
    assert "5 unpaid orders" in body["message"] and "MAX_OPEN_ORDERS" not in body["message"]
    assert body["error"]["limit"] == 5 and body["error"]["freesAt"]
    assert Product.get_by_id(product.id).quantity == 95
    assert Order.select().count() == 5
    # Canceling one frees a place.
    first = Order.select().order_by(Order.created_at).first()
    assert server.request("POST", f"/order/{first.id}/cancel", headers=headers).status_code == 200
    assert _pay_later(server, headers, [_line(product)]).status_code == 201
    # An admin is not limited; another buyer has places of their own.
    admin = bearer(settings, make_user("admin@example.com", role="ADMIN"))
    for _ in range(6):
        assert _pay_later(server, admin, [_line(product)]).status_code == 201
    other = bearer(settings, make_user("other@example.com"))
    assert _pay_later(server, other, [_line(product)]).status_code == 201
    assert_ledger_consistent()


def test_the_open_order_limit_holds_under_concurrent_orders(limited, settings):
    """Ten orders at once from a buyer one place short of the limit: exactly one passes."""
    server = limited
    buyer, product = make_user(), make_product("Mug", quantity=100)
    headers = bearer(settings, buyer)
    for _ in range(DEFAULTS.max_open_orders - 1):
        assert _pay_later(server, headers, [_line(product)]).status_code == 201
    barrier = threading.Barrier(10)

    def race(_):
        with httpx.Client(base_url=server.url, timeout=30) as client:
            barrier.wait()
            path = "/api/v1/order/pay-later"
            return client.post(path, json={"items": [_line(product)]}, headers=headers)

    with ThreadPoolExecutor(10) as pool:
        statuses = sorted(r.status_code for r in pool.map(race, range(10)))
    assert statuses == [201] + [409] * 9, statuses
    assert Order.select().where(Order.status == "UNPAID").count() == DEFAULTS.max_open_orders
    assert Product.get_by_id(product.id).quantity == 100 - DEFAULTS.max_open_orders
    assert_ledger_consistent()


def test_a_line_repeated_past_the_per_line_limit_is_refused(server, settings):
    buyer, product = make_user(), make_product("Mug", quantity=2_000_000)
    headers = bearer(settings, buyer)
    for items in (
        [_line(product, MAX_LINE_QUANTITY), _line(product, 1)],
        [_line(product, MAX_LINE_QUANTITY)] * 100,  # 1,000,000 units in one line
    ):
        refused = _pay_later(server, headers, items)
        assert refused.status_code == 400, refused.text
        assert "10,000" in refused.text
    assert Product.get_by_id(product.id).quantity == 2_000_000
    assert Order.select().count() == 0
    # Repeated lines within the limit merge into one line, as before.
    split = [_line(product, 4000), _line(product, 6000)]
    placed = _pay_later(server, headers, split)
    assert placed.status_code == 201
    order = server.request("GET", f"/order/{placed.json()['data']['orderId']}", headers=headers)
    assert [item["quantity"] for item in order.json()["data"]["items"]] == [10_000]


def test_order_creation_is_rate_limited_per_user(start_server, settings):
    buyer, product = make_user(), make_product("Mug", quantity=100)
    headers = bearer(settings, buyer)
    with start_server(env={**LIMIT_DEFAULTS, "ORDER_RATE_LIMIT": "3/1h"}) as server:
        for _ in range(3):
            placed = _pay_later(server, headers, [_line(product)])
            assert placed.status_code == 201
            order_id = placed.json()["data"]["orderId"]
            path = f"/order/{order_id}/cancel"
            assert server.request("POST", path, headers=headers).status_code == 200
        refused = _pay_later(server, headers, [_line(product)])
        assert refused.status_code == 429, refused.text
        assert 0 < int(refused.headers["retry-after"]) <= 3600
        assert "orders" in refused.json()["message"].lower()
        assert Product.get_by_id(product.id).quantity == 100
        admin = bearer(settings, make_user("admin@example.com", role="ADMIN"))
        for _ in range(4):
            assert _pay_later(server, admin, [_line(product)]).status_code == 201
        # A replay of an order already placed is not a new order: it is answered.
        other = bearer(settings, make_user("other@example.com"))
        keyed = {**other, "Idempotency-Key": "k-1"}
        assert _pay_later(server, keyed, [_line(product)]).status_code == 201
        for _ in range(4):
            replay = _pay_later(server, keyed, [_line(product)])
            assert replay.status_code == 201
            assert replay.headers.get("idempotent-replayed") == "true"


@pytest.mark.parametrize("rate", ["30/1h", "off"])
def test_a_second_order_waits_for_the_first_to_commit_before_counting(db, settings, rate):
    """The race made certain: the first placement holds its transaction open (`within`)
    while the second one runs. Counting without serialising (PostgreSQL reads committed
    rows only) would let both through at the limit; the second must wait, then count
    the first and be refused. With a rate limit its counter's row is the lock; without,
    the buyer's row."""
    from dataclasses import replace

    from shopctl.config import parse_rate
    from shopctl.db import connection
    from shopctl.errors import Conflict
    from shopctl.schemas import OrderCreate, validate
    from shopctl.services.orders.placement import place_order

    limited = replace(settings, max_open_orders=2, order_rate=parse_rate(rate))
    buyer, product = make_user(), make_product("Mug")
    items = validate(OrderCreate, {"items": [_line(product)]}).items
    place_order(limited, buyer, items, pay_later=True)  # one place left
    inside, release, outcomes = threading.Event(), threading.Event(), {}

    def hold(order) -> None:
        inside.set()
        release.wait(30)

    def place(name: str, within=None) -> None:
        with connection():
            try:
                place_order(limited, buyer, items, pay_later=True, within=within)
                outcomes[name] = "placed"
            except Conflict:
                outcomes[name] = "refused"

    first = threading.Thread(target=place, args=("first", hold))
    second = threading.Thread(target=place, args=("second",))
    first.start()
    assert inside.wait(30)
    second.start()
    second.join(timeout=1.5)  # it must still be waiting: the first has not committed
    finished_early = not second.is_alive()
    release.set()
    first.join()
    second.join()
    assert not finished_early, outcomes
    assert outcomes == {"first": "placed", "second": "refused"}
    assert Order.select().where(Order.user == buyer.id).count() == 2
