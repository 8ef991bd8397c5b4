"""Builders for the payment tests: a buyer with a token, orders through the API, waiting."""

from __future__ import annotations

import time
from dataclasses import dataclass

from shopctl.models import Order, OrderHistory, Payment, Product, StripeEvent
from tests.conftest import StripeStack
from tests.orders_support import bearer, make_product, make_user


@dataclass
class Buyer:
    stack: StripeStack
    headers: dict

    def post(self, path: str, **kwargs):
        return self.stack.server.request("POST", path, headers=self.headers, **kwargs)

    def get(self, path: str, **kwargs):
        return self.stack.server.request("GET", path, headers=self.headers, **kwargs)

    def order_now(self, product: Product, quantity: int = 1) -> dict:
        response = self.post(
            "/order", json={"items": [{"productId": product.id, "quantity": quantity}]}
        )
        assert response.status_code == 201, response.text
        return response.json()["data"]

    def order_later(self, product: Product, quantity: int = 1) -> dict:
        response = self.post(
            "/order/pay-later", json={"items": [{"productId": product.id, "quantity": quantity}]}
        )
        assert response.status_code == 201, response.text
        return response.json()["data"]

    def pay(self, order_id: str) -> dict:
        response = self.post(f"/order/{order_id}/pay")
        assert response.status_code == 200, response.text
        return response.json()["data"]


def buyer(stack: StripeStack, settings, email: str = "buyer@example.com") -> Buyer:
    return Buyer(stack, bearer(settings, make_user(email)))


def product(name: str = "Mug", quantity: int = 10, price_cents: int = 1250) -> Product:
    return make_product(name, quantity=quantity, price_cents=price_cents)


def wait_for(predicate, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def wait_processed(*event_types: str) -> None:
    """Until an event of each type has been processed (by its webhook, in any order)."""
    for event_type in event_types:
        wait_for(
            lambda t=event_type: (
                StripeEvent.select()
                .where((StripeEvent.type == t) & (StripeEvent.status == "PROCESSED"))
                .exists()
            ),
            what=f"{event_type} processed",
        )


def status_of(order_id: str) -> str:
    return Order.get_by_id(order_id).status


def wait_status(order_id: str, status: str, timeout: float = 10.0) -> None:
    wait_for(lambda: status_of(order_id) == status, timeout, f"order {order_id} → {status}")


def payment_of(order_id: str) -> Payment:
    return Payment.get(Payment.order == order_id)


def history(order_id: str) -> list[tuple[str | None, str]]:
    rows = OrderHistory.select().where(OrderHistory.order == order_id).order_by(OrderHistory.id)
    return [(row.from_status, row.to_status) for row in rows]


def stock(product: Product) -> int:
    return Product.get_by_id(product.id).quantity
