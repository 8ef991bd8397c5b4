"""Builders shared by the order tests: users with tokens, products with a ledger, orders."""

from __future__ import annotations

from datetime import timedelta

from shopctl.models import Order, Product, StockMovement, User, utcnow
from shopctl.schemas import OrderCreate, validate
from shopctl.services.accounts.tokens import issue_access_token
from shopctl.services.catalog.ledger import order_stock_mismatches, stock_mismatches
from shopctl.services.orders.placement import place_order


def make_user(email: str = "buyer@example.com", role: str = "USER") -> User:
    return User.create(email=email, password_hash="not-a-real-hash", name=email, role=role)


def bearer(settings, user: User) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_access_token(settings, user)}"}


def make_product(
    name: str = "Mug",
    *,
    price_cents: int = 1250,
    quantity: int = 10,
    archived: bool = False,
    currency: str = "usd",
) -> Product:
    """A product whose stock is backed by an "initial" ledger row, as the catalog makes them."""
    product = Product.create(
        name=name,
        price_cents=price_cents,
        quantity=quantity,
        is_archived=archived,
        currency=currency,
    )
    if quantity:
        StockMovement.create(product=product.id, delta=quantity, reason="initial")
    return product


def lines(*pairs: tuple[Product, int]) -> list[dict]:
    return [{"productId": product.id, "quantity": quantity} for product, quantity in pairs]


def place(
    settings,
    user: User,
    *pairs: tuple[Product, int],
    pay_later: bool = True,
    key: str | None = None,
) -> Order:
    items = validate(OrderCreate, {"items": lines(*pairs)}).items
    order, _ = place_order(settings, user, items, pay_later=pay_later, idempotency_key=key)
    return order


def make_overdue(*orders: Order, minutes: int = 5) -> None:
    ids = [order.id for order in orders]
    Order.update(expires_at=utcnow() - timedelta(minutes=minutes)).where(
        Order.id.in_(ids)
    ).execute()


def stock_of(product: Product) -> int:
    return Product.get_by_id(product.id).quantity


def assert_ledger_consistent() -> None:
    assert stock_mismatches() == []
    assert order_stock_mismatches() == []
    assert Product.select().where(Product.quantity < 0).count() == 0
