"""Builders for the fulfilment and line-refund tests: paid orders of several lines through
the API and the sandbox, an admin, and the order as its owner sees it."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import httpx

from shopctl.models import OrderItem, User
from tests.orders_support import bearer, make_user
from tests.payments_support import buyer, product, wait_status


@dataclass
class PaidOrder:
    order_id: str
    owner: dict  # the buyer's Authorization header
    items: dict[str, str]  # product name → order item id


def paid_order(stack, settings, *lines: tuple[str, int, int], email: str = "payer@example.com"):
    """A PAID order of `lines` (product name, units, unit price in cents), each product
    stocked with 5 units more than ordered."""
    shopper = buyer(stack, settings, email)
    products = [
        product(name, quantity=units + 5, price_cents=price) for name, units, price in lines
    ]
    body = {
        "items": [
            {"productId": made.id, "quantity": units}
            for made, (_, units, _) in zip(products, lines, strict=True)
        ]
    }
    response = shopper.post("/order", json=body)
    assert response.status_code == 201, response.text
    placed = response.json()["data"]
    stack.pay(placed["sessionId"])
    wait_status(placed["orderId"], "PAID")
    items = OrderItem.select().where(OrderItem.order == placed["orderId"])
    return PaidOrder(placed["orderId"], shopper.headers, {i.product_name: i.id for i in items})


def admin(settings) -> dict:
    found = User.get_or_none(User.email == "ops@example.com")
    return bearer(settings, found or make_user("ops@example.com", role="ADMIN"))


def owner_view(stack, order: PaidOrder) -> dict:
    response = stack.server.request("GET", f"/order/{order.order_id}", headers=order.owner)
    assert response.status_code == 200, response.text
    return response.json()["data"]


def item(order_id: str, item_id: str) -> OrderItem:
    return OrderItem.get((OrderItem.order == order_id) & (OrderItem.id == item_id))


def post_at_once(url: str, *requests: dict) -> list[httpx.Response]:
    """POST each of `requests` (httpx keyword arguments) from its own thread, all released
    together by a barrier, each on its own connection."""
    barrier, results = threading.Barrier(len(requests)), [None] * len(requests)

    def run(index: int, request: dict) -> None:
        with httpx.Client(timeout=30) as client:
            barrier.wait()
            results[index] = client.post(url, **request)

    threads = [threading.Thread(target=run, args=pair) for pair in enumerate(requests)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results
