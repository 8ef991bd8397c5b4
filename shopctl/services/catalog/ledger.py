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

The stock ledger, stock room and order stock checks read only the rows a LedgerScope names
(ledger_scope.py: what changed since the last clean run, and a sweep), or all of them.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from datetime import timedelta

from peewee import JOIN, Case, fn

from shopctl.db import database, is_postgres
from shopctl.models import (
    Order,
    OrderHistory,
    OrderItem,
    Product,
    ProductCount,
    StockMovement,
    utcnow,
)
from shopctl.schemas import STOCK_COLUMN_MAX
from shopctl.services.catalog.ledger_scope import LedgerScope, ledger_scope
from shopctl.services.catalog.stock import products_without_room
from shopctl.services.common import Report

HOLDING = ("UNPAID", "PROCESSING", "PAID")
RELEASED = ("EXPIRED", "CANCELED", "FAILED")
STUCK_AFTER = timedelta(hours=1)
SHOWN = 5  # names listed in a failing check's detail; the rest are counted
_WHOLE = LedgerScope(None, None, None)  # every product and every order


def check_ledger(report: Report, full: bool = False) -> None:
    for _, check in ledger_checks(full):
        check(report)


class LedgerRun:
    """One doctor run's ledger checks over one scope, chosen when the first check starts;
    the checkpoint is saved when the last of them (order stock) finds everything clean."""

    def __init__(self, full: bool):
        self.full = full
        self.scope: LedgerScope | None = None
        self.clean = True

    def _scope(self) -> LedgerScope:
        if self.scope is None:
            self.scope = ledger_scope(self.full)
        return self.scope

    def stock_ledger(self, report: Report) -> None:
        self.clean &= check_stock_ledger(report, self._scope())

    def stock_room(self, report: Report) -> None:
        self.clean &= check_stock_room(report, self._scope())

    def order_stock(self, report: Report) -> None:
        self.clean &= check_order_stock(report, self._scope())
        if self.clean:
            self._scope().save()


def ledger_checks(full: bool = False) -> list[tuple[str, Callable[[Report], object]]]:
    """(name, check) in the order doctor runs them; `full` checks every row."""
    run = LedgerRun(full)
    return [
        ("stock ledger", run.stock_ledger),
        ("stock room", run.stock_room),
        ("order stock", run.order_stock),
        ("stuck orders", check_stuck_orders),
        ("product count", check_product_count),
    ]


def _listing(names: list[str]) -> str:
    more = f" and {len(names) - SHOWN} more" if len(names) > SHOWN else ""
    return ", ".join(names[:SHOWN]) + more


@contextmanager
def _probing():
    """A slice is read by index probes, a few per row, whose estimated cost sets off
    PostgreSQL's JIT: it compiled each query for a third of the time it then ran."""
    if not is_postgres():
        yield
        return
    with database.atomic():
        database.execute_sql("SET LOCAL jit = off")
        yield


def _within(query, condition):
    return query if condition is None else query.where(condition)


# Every row is read by one grouped join (a hash join over the whole ledger); a slice by
# a sum per row through the ledger's index, since a join was planned as a scan of every
# movement however few products the slice held.


def stock_mismatches(scope: LedgerScope | None = None) -> list[tuple[str, int, int]]:
    """(product name, quantity, sum of movements) where they differ (in `scope`: all)."""
    found = set()  # a product both changed and swept is read twice
    with _probing():
        for where in (scope or _WHOLE).product_conditions(Product.id):
            found.update(_product_sums(where).tuples())
    return sorted((name, quantity, int(total)) for name, quantity, total in found)


def _product_sums(where):
    if where is None:
        moved = fn.COALESCE(fn.SUM(StockMovement.delta), 0)
        return (
            Product.select(Product.name, Product.quantity, moved.alias("moved"))
            .join(StockMovement, JOIN.LEFT_OUTER, on=(StockMovement.product == Product.id))
            .group_by(Product.id, Product.name, Product.quantity)
            .having(moved != Product.quantity)
        )
    moved = StockMovement.select(fn.COALESCE(fn.SUM(StockMovement.delta), 0)).where(
        StockMovement.product == Product.id
    )
    return Product.select(Product.name, Product.quantity, moved.alias("moved")).where(
        where & (Product.quantity != moved)
    )


def negative_stock(scope: LedgerScope | None = None) -> list[str]:
    names = set()
    for where in (scope or _WHOLE).product_conditions(Product.id):
        query = Product.select(Product.name).where(Product.quantity < 0)
        names.update(name for (name,) in _within(query, where).tuples())
    return sorted(names)


def check_stock_ledger(report: Report, scope: LedgerScope | None = None) -> bool:
    scope = scope or _WHOLE
    negative = negative_stock(scope)
    mismatched = stock_mismatches(scope)
    if negative or mismatched:
        parts = [f"{name}: stock {qty}, movements {moved}" for name, qty, moved in mismatched]
        parts += [f"{name}: negative stock" for name in negative]
        report.add(
            "stock ledger",
            False,
            _listing(parts),
            "stock was changed outside shopctl; record the difference as a movement",
        )
        return False
    checked = scope.describe(scope.products, "products")
    report.add(
        "stock ledger", True, f"every product's stock equals the sum of its movements ({checked})"
    )
    return True


def check_stock_room(report: Report, scope: LedgerScope | None = None) -> bool:
    crowded = set()
    with _probing():
        for where in (scope or _WHOLE).product_conditions(Product.id):
            crowded.update(products_without_room(where))
    if crowded:
        report.add(
            "stock room",
            False,
            ", ".join(
                f"{name}: stock {qty:,} + {units:,} held" for name, qty, units in sorted(crowded)
            ),
            f"lower its stock (shopctl products set-stock) so stock plus held stays within "
            f"{STOCK_COLUMN_MAX:,}, or a cancel or expiry of those orders fails",
        )
        return False
    report.add("stock room", True, "every unit held by orders fits back into stock")
    return True


def order_stock_mismatches(scope: LedgerScope | None = None) -> list[tuple[str, str, str]]:
    """(order id, status, problem) for orders whose stock movements or flag do not add up
    (of the orders in `scope`: all)."""
    problems: dict[str, tuple[str, str]] = {}
    scope = scope or _WHOLE
    # The same rows twice over: by the order's id, and by the line's reference to it (its
    # index hands out a range's lines directly).
    pairs = zip(
        scope.order_conditions(Order.id), scope.order_conditions(OrderItem.order), strict=True
    )
    with _probing():
        for where, lines in pairs:
            _order_problems(where, lines, problems)
    return sorted((order_id, status, problem) for order_id, (status, problem) in problems.items())


def _line_nets(where):
    """Order lines whose own movements do not net to what the line should hold."""
    # An order line's own movements net to -quantity while held (less what refunds
    # restocked, linked movements of their own), to 0 once released.
    held = OrderItem.restocked_quantity - OrderItem.quantity
    expected = Case(None, [(Order.stock_released == False, held)], 0)  # noqa: E712
    columns = (Order.id, Order.status, Order.stock_released, OrderItem.quantity)
    own = (StockMovement.order == OrderItem.order) & (StockMovement.product == OrderItem.product)
    if where is None:
        net = fn.COALESCE(fn.SUM(StockMovement.delta), 0)
        return (
            OrderItem.select(*columns, net.alias("net"))
            .join(Order)
            .join(StockMovement, JOIN.LEFT_OUTER, on=own)
            .group_by(*columns, OrderItem.id, OrderItem.restocked_quantity)
            .having(net != expected)
        )
    net = StockMovement.select(fn.COALESCE(fn.SUM(StockMovement.delta), 0)).where(own)
    return OrderItem.select(*columns, net.alias("net")).join(Order).where(where & (expected != net))


def _order_problems(where, lines, problems: dict[str, tuple[str, str]]) -> None:
    for order_id, status, _, quantity, net_units in _line_nets(lines).tuples():
        problems.setdefault(order_id, (status, _net_problem(net_units, quantity)))
    flags = Order.select(Order.id, Order.status, Order.stock_released).where(
        (Order.status.in_(HOLDING) & (Order.stock_released == True))  # noqa: E712
        | (Order.status.in_(RELEASED) & (Order.stock_released == False))  # noqa: E712
    )
    for order_id, status, released in _within(flags, where).tuples():
        problems.setdefault(order_id, (status, "released" if released else "still holds stock"))
    for order_id, released in _refunds_that_moved_stock(where):
        problem = "its refund returned the stock" if released else "still holds stock"
        problems.setdefault(order_id, ("REFUNDED", problem))


def _refunds_that_moved_stock(where) -> list[tuple[str, bool]]:
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
    return list(_within(query, where).tuples())


def _net_problem(net_units: int, quantity: int) -> str:
    if net_units > 0:
        return f"stock returned twice (net +{net_units})"
    return f"movements net {net_units} for {quantity} ordered"


def check_order_stock(report: Report, scope: LedgerScope | None = None) -> bool:
    scope = scope or _WHOLE
    problems = order_stock_mismatches(scope)
    if problems:
        parts = [f"{order_id} ({status}): {problem}" for order_id, status, problem in problems]
        report.add("order stock", False, _listing(parts), "inspect with: shopctl orders show ID")
        return False
    checked = scope.describe(scope.orders, "orders")
    report.add(
        "order stock", True, f"every order holds or returned its stock exactly once ({checked})"
    )
    return True


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
