"""The order life cycle's primitives: lock, transition, give stock back, take it again.

Everything here runs INSIDE the caller's `write_transaction()` and never opens one
itself, so a status change, its history row and its stock movements commit together
or not at all. Callers (order services, the expiry job, Stripe webhooks) follow one
pattern, which keeps every transition idempotent whoever gets there first:

    with write_transaction():
        order = lock_order(order_id)          # row lock; re-read the current status
        if order is None or order.status != "UNPAID":
            ...                               # someone else got there first
        transition(order, "EXPIRED", reason=..., actor="cron", payment_status="EXPIRED")
        release_stock(order, "expired")       # exactly once per order, whoever calls it

Locks are always taken order first, then products in id order, so two writers can
never deadlock on each other's rows (PostgreSQL) — SQLite's IMMEDIATE transactions
serialise writers anyway.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

from peewee import chunked

from shopctl.db import database, is_postgres
from shopctl.errors import Conflict
from shopctl.models import Order, OrderHistory, OrderItem, Payment, Product, StockMovement, utcnow

UNPAID, PROCESSING, PAID, FAILED = "UNPAID", "PROCESSING", "PAID", "FAILED"
CANCELED, EXPIRED, REFUNDED = "CANCELED", "EXPIRED", "REFUNDED"

# Which status may follow which. `transition()` refuses anything else with Conflict, so a
# bug (or a reordered webhook) can never move an order backwards, e.g. PAID → UNPAID.
# EXPIRED/CANCELED/FAILED → PAID/REFUNDED are the late-payment outcomes (SPEC).
ALLOWED: dict[str, frozenset[str]] = {
    UNPAID: frozenset({PROCESSING, PAID, FAILED, CANCELED, EXPIRED}),
    PROCESSING: frozenset({PAID, FAILED}),
    PAID: frozenset({REFUNDED}),
    FAILED: frozenset({PAID, REFUNDED}),
    EXPIRED: frozenset({PAID, REFUNDED}),
    CANCELED: frozenset({PAID, REFUNDED}),
    REFUNDED: frozenset(),
}


class _Shortfall(Exception):
    """Raised inside a savepoint to undo a partial re-reservation."""


def lock_order(order_id: str) -> Order | None:
    """The order re-read under a row lock (PostgreSQL FOR UPDATE; SQLite's write lock)."""
    query = Order.select().where(Order.id == order_id)
    if is_postgres():
        query = query.for_update()
    return query.get_or_none()


def transition(
    order: Order, to_status: str, *, reason: str, actor: str, payment_status: str | None = None
) -> bool:
    """Move a locked `order` to `to_status` and record why; False (nothing written) if it is there.

    Raises Conflict when ALLOWED does not permit the move. `payment_status`, when given,
    is written to the order's payment row in the same transaction.
    """
    from_status = order.status
    if from_status == to_status:
        return False
    if to_status not in ALLOWED.get(from_status, ()):
        raise Conflict(f"Order is {from_status} and cannot become {to_status}")
    now = utcnow()
    Order.update(status=to_status, updated_at=now).where(Order.id == order.id).execute()
    if payment_status is not None:
        Payment.update(status=payment_status, updated_at=now).where(
            Payment.order == order.id
        ).execute()
    OrderHistory.create(
        order=order.id,
        from_status=from_status,
        to_status=to_status,
        reason=reason[:200],
        actor=actor[:255],
        created_at=now,
    )
    order.status, order.updated_at = to_status, now
    return True


def release_stock(order: Order, reason: str) -> bool:
    """Give the order's items back to stock, once per order; False if it already happened.

    The conditional UPDATE on `stock_released` is the guard: of any number of concurrent
    callers exactly one sees rowcount 1.
    """
    claimed = (
        Order.update(stock_released=True)
        .where((Order.id == order.id) & (Order.stock_released == False))  # noqa: E712
        .execute()
    )
    if not claimed:
        return False
    quantities = _item_quantities(order.id)
    now = utcnow()
    for product_id, quantity in sorted(quantities.items()):
        Product.update(quantity=Product.quantity + quantity, updated_at=now).where(
            Product.id == product_id
        ).execute()
    _record_movements(order.id, quantities, reason, sign=+1)
    order.stock_released = True
    return True


def reserve_stock(quantities: Mapping[str, int]) -> dict[str, int]:
    """Take `quantities` (product id → units) from stock where there is enough.

    Returns the products that lacked stock mapped to what they have left; empty means
    everything was taken. The caller rolls back (or raises) on a shortfall: this
    function does not undo the lines it did take. Movements are the caller's to write.
    """
    now = utcnow()
    missing: list[str] = []
    for product_id, quantity in sorted(quantities.items()):
        # `quantity >= n` in the WHERE is what makes overselling impossible: the row is
        # re-checked under its write lock, whatever any other transaction is doing.
        taken = (
            Product.update(quantity=Product.quantity - quantity, updated_at=now)
            .where((Product.id == product_id) & (Product.quantity >= quantity))
            .execute()
        )
        if not taken:
            missing.append(product_id)
    if not missing:
        return {}
    left = Product.select(Product.id, Product.quantity).where(Product.id.in_(missing))
    return {product_id: 0 for product_id in missing} | {p.id: p.quantity for p in left}


def rereserve_stock(order: Order, reason: str = "late-payment") -> bool:
    """Take a released order's items again (late payment); all or nothing.

    True if the order holds its stock afterwards (also when it never released it);
    False, with nothing changed, when any product lacks stock.
    """
    if not order.stock_released:
        return True
    quantities = _item_quantities(order.id)
    try:
        with database.atomic():  # a savepoint: a shortfall undoes the lines already taken
            if reserve_stock(quantities):
                raise _Shortfall
            Order.update(stock_released=False).where(Order.id == order.id).execute()
            _record_movements(order.id, quantities, reason, sign=-1)
    except _Shortfall:
        return False
    order.stock_released = False
    return True


def record_reservation(order_id: str, quantities: Mapping[str, int], reason: str = "order"):
    """The ledger rows for stock just taken by `reserve_stock` for a new order."""
    _record_movements(order_id, quantities, reason, sign=-1)


def _item_quantities(order_id: str) -> dict[str, int]:
    quantities: dict[str, int] = defaultdict(int)
    items = OrderItem.select(OrderItem.product, OrderItem.quantity).where(
        OrderItem.order == order_id
    )
    for item in items.tuples():
        quantities[item[0]] += item[1]
    return dict(quantities)


def _record_movements(order_id: str, quantities: Mapping[str, int], reason: str, *, sign: int):
    now = utcnow()
    rows = [
        {
            "product": product_id,
            "delta": sign * quantity,
            "reason": reason,
            "order": order_id,
            "created_at": now,
        }
        for product_id, quantity in sorted(quantities.items())
    ]
    insert_movements(rows)


def insert_movements(rows: Iterable[dict], chunk: int = 1000) -> None:
    """Append ledger rows in chunks small enough for SQLite's bound-parameter limit."""
    for part in chunked(list(rows), chunk):
        StockMovement.insert_many(part).execute()
