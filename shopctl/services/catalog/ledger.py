"""Stock ledger checks for `shopctl doctor`: does the stock add up, and is any order stuck?

* stock ledger: every product's quantity equals the sum of its movements, never below 0;
* order stock: for every order line, the order's own movements net to -quantity while it
  holds its stock (plus the units its line refunds restocked, `refund-restock` movements
  of the order) and to 0 once released (a positive net means stock came back twice);
  and the flag matches the status: UNPAID/PROCESSING/PAID hold stock,
  EXPIRED/CANCELED/FAILED gave it back, and REFUNDED keeps what it had before its
  refund, because a refund returns stock only as restocked lines, never by the flag:
  refunded from PAID it still holds its stock, refunded from EXPIRED/CANCELED/FAILED (a
  late payment whose stock was gone) it never held it again;
* stuck orders: UNPAID more than an hour past its reservation (is the cron job running?);
* product count: the count of products for sale that the listing reads (kept by triggers)
  equals the products not archived.
"""

from __future__ import annotations

from datetime import timedelta

from peewee import JOIN, Case, fn

from shopctl.models import (
    Order,
    OrderHistory,
    OrderItem,
    Product,
    ProductCount,
    StockMovement,
    utcnow,
)
from shopctl.services.catalog.stock import check_stock_room
from shopctl.services.common import Report

HOLDING = ("UNPAID", "PROCESSING", "PAID")
RELEASED = ("EXPIRED", "CANCELED", "FAILED")
STUCK_AFTER = timedelta(hours=1)
SHOWN = 5  # names listed in a failing check's detail; the rest are counted


def check_ledger(report: Report) -> None:
    check_stock_ledger(report)
    check_stock_room(report)
    check_order_stock(report)
    check_stuck_orders(report)
    check_product_count(report)


def _listing(names: list[str]) -> str:
    more = f" and {len(names) - SHOWN} more" if len(names) > SHOWN else ""
    return ", ".join(names[:SHOWN]) + more


def stock_mismatches() -> list[tuple[str, int, int]]:
    """(product name, quantity, sum of movements) where they differ."""
    moved = fn.COALESCE(fn.SUM(StockMovement.delta), 0)
    query = (
        Product.select(Product.name, Product.quantity, moved.alias("moved"))
        .join(StockMovement, JOIN.LEFT_OUTER, on=(StockMovement.product == Product.id))
        .group_by(Product.id, Product.name, Product.quantity)
        .having(moved != Product.quantity)
        .order_by(Product.name)
    )
    return [(name, quantity, int(total)) for name, quantity, total in query.tuples()]


def check_stock_ledger(report: Report) -> None:
    negative = [p.name for p in Product.select(Product.name).where(Product.quantity < 0)]
    mismatched = stock_mismatches()
    if negative or mismatched:
        parts = [f"{name}: stock {qty}, movements {moved}" for name, qty, moved in mismatched]
        parts += [f"{name}: negative stock" for name in negative]
        report.add(
            "stock ledger",
            False,
            _listing(parts),
            "stock was changed outside shopctl; record the difference as a movement",
        )
        return
    report.add("stock ledger", True, "every product's stock equals the sum of its movements")


def order_stock_mismatches() -> list[tuple[str, str, str]]:
    """(order id, status, problem) for orders whose stock movements or flag do not add up."""
    net = fn.COALESCE(fn.SUM(StockMovement.delta), 0)
    # An order line's own movements net to -quantity while held (less what refunds
    # restocked, linked movements of their own), to 0 once released.
    held = OrderItem.restocked_quantity - OrderItem.quantity
    expected = Case(None, [(Order.stock_released == False, held)], 0)  # noqa: E712
    lines = (
        OrderItem.select(
            Order.id, Order.status, Order.stock_released, OrderItem.quantity, net.alias("net")
        )
        .join(Order)
        .join(
            StockMovement,
            JOIN.LEFT_OUTER,
            on=(
                (StockMovement.order == OrderItem.order)
                & (StockMovement.product == OrderItem.product)
            ),
        )
        .group_by(
            Order.id,
            Order.status,
            Order.stock_released,
            OrderItem.id,
            OrderItem.quantity,
            OrderItem.restocked_quantity,
        )
        .having(net != expected)
    )
    problems = {
        order_id: (status, _net_problem(net_units, quantity))
        for order_id, status, _, quantity, net_units in lines.tuples()
    }
    flags = Order.select(Order.id, Order.status, Order.stock_released).where(
        (Order.status.in_(HOLDING) & (Order.stock_released == True))  # noqa: E712
        | (Order.status.in_(RELEASED) & (Order.stock_released == False))  # noqa: E712
    )
    for order_id, status, released in flags.tuples():
        problems.setdefault(order_id, (status, "released" if released else "still holds stock"))
    for order_id, released in _refunds_that_moved_stock():
        problem = "its refund returned the stock" if released else "still holds stock"
        problems.setdefault(order_id, ("REFUNDED", problem))
    return sorted((order_id, status, problem) for order_id, (status, problem) in problems.items())


def _refunds_that_moved_stock() -> list[tuple[str, bool]]:
    """(order id, stock_released) of REFUNDED orders whose stock flag is not what it was
    before their (latest) refund: held if refunded from PAID, released otherwise."""
    latest = OrderHistory.alias("latest")
    # A row that kept the status (a dispute opened, say) records no move: not the refund.
    last_refund = latest.select(fn.MAX(latest.id)).where(
        (latest.order == Order.id)
        & (latest.to_status == "REFUNDED")
        & (latest.from_status != "REFUNDED")
        & latest.event.is_null()
    )
    refunded_from_paid = OrderHistory.from_status == "PAID"
    query = (
        Order.select(Order.id, Order.stock_released)
        .join(OrderHistory, on=(OrderHistory.order == Order.id))
        .where(
            (Order.status == "REFUNDED")
            & (OrderHistory.id == last_refund)
            & (
                (refunded_from_paid & (Order.stock_released == True))  # noqa: E712
                | (~refunded_from_paid & (Order.stock_released == False))  # noqa: E712
            )
        )
    )
    return list(query.tuples())


def _net_problem(net_units: int, quantity: int) -> str:
    if net_units > 0:
        return f"stock returned twice (net +{net_units})"
    return f"movements net {net_units} for {quantity} ordered"


def check_order_stock(report: Report) -> None:
    problems = order_stock_mismatches()
    if problems:
        parts = [f"{order_id} ({status}): {problem}" for order_id, status, problem in problems]
        report.add("order stock", False, _listing(parts), "inspect with: shopctl orders show ID")
        return
    report.add("order stock", True, "every order holds or returned its stock exactly once")


def check_stuck_orders(report: Report) -> None:
    stuck = (
        Order.select()
        .where((Order.status == "UNPAID") & (Order.expires_at < utcnow() - STUCK_AFTER))
        .count()
    )
    if stuck:
        report.add(
            "stuck orders",
            False,
            f"{stuck} unpaid order(s) more than an hour past their reservation",
            "run `shopctl orders expire` from cron every minute",
        )
        return
    report.add("stuck orders", True, "no unpaid order is overdue by more than an hour")


RECOUNT = "UPDATE product_count SET live = (SELECT COUNT(*) FROM product WHERE NOT is_archived)"


def check_product_count(report: Report) -> None:
    kept = ProductCount.select(ProductCount.live).scalar()
    actual = Product.select().where(Product.is_archived == False).count()  # noqa: E712
    if kept != actual:
        report.add(
            "product count",
            False,
            f"listings say {kept} products are for sale, there are {actual}",
            f"its triggers were bypassed; run: {RECOUNT}",
        )
        return
    report.add("product count", True, f"{actual} products for sale, as listings say")
