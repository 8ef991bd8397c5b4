"""The expiry job (`shopctl orders expire`): overdue UNPAID orders become EXPIRED, stock comes back.

Set-based, batch by batch: per batch a handful of statements, whatever its size.
Safe to run on several hosts at once: on PostgreSQL each batch locks its orders
with `FOR UPDATE SKIP LOCKED`, so concurrent runs split the work instead of queueing;
on SQLite the IMMEDIATE write transaction serialises them. Either way the status is
re-checked under the lock, so an order that a cancel or a payment reached first is
left alone, and each order's stock comes back exactly once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from peewee import SQL, Case, DatabaseError, Value, fn

from shopctl.config import Settings
from shopctl.db import database, is_postgres, write_transaction
from shopctl.models import Order, OrderHistory, OrderItem, Payment, Product, StockMovement, utcnow
from shopctl.services.orders.lifecycle import EXPIRED, UNPAID, announce

EXPIRY_REASON = "reservation expired"

# (order id, Checkout Session id) → True to go ahead, False when the session turned out
# to be completed (the payment webhook will settle that order). Raising counts the order
# as failed and leaves it for the next run.
BeforeExpire = Callable[[str, str], bool]


@dataclass
class ExpirySummary:
    expired: int = 0
    restored_units: int = 0
    failed: int = 0
    skipped: int = 0
    dry_run: bool = False
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failed == 0

    def line(self) -> str:
        if self.dry_run:
            return f"would expire {self.expired} orders, restoring {self.restored_units} units"
        text = f"expired {self.expired} orders, restored {self.restored_units} units, "
        text += f"{self.failed} failed"
        return text + (f", {self.skipped} skipped" if self.skipped else "")

    def as_json(self) -> dict:
        return {
            "expired": self.expired,
            "restoredUnits": self.restored_units,
            "failed": self.failed,
            "skipped": self.skipped,
            "dryRun": self.dry_run,
            "errors": self.errors,
        }


def expire_overdue(
    settings: Settings,
    *,
    batch: int = 5000,
    dry_run: bool = False,
    now: datetime | None = None,
    before_expire: BeforeExpire | None = None,
) -> ExpirySummary:
    """Expire every UNPAID order whose reservation ended before `now` (default: now).

    With `before_expire`, orders that have a Checkout Session are first put to it, one
    by one and outside any transaction (see BeforeExpire); orders without one go the
    fast, set-based way. A batch that fails with a database error stops the run; its
    orders count as failed and the next run retries them.
    """
    cutoff = now or utcnow()
    if dry_run:
        return _preview(cutoff)
    summary = ExpirySummary()
    with_hook = before_expire is not None
    if with_hook and not _expire_sessions_first(cutoff, batch, before_expire, summary):
        return summary
    # Each batch locks the next overdue orders nobody else holds; expired ones no longer
    # match, so the loop ends when nothing is left (or everything left is another run's).
    while _expire_batch(cutoff, batch, summary, sessionless=with_hook):
        pass
    return summary


def _expire_sessions_first(cutoff, batch, before_expire, summary: ExpirySummary) -> bool:
    """Ask about, then expire, the overdue orders with a session; False on a failed batch."""
    after = ""
    while rows := _with_session(cutoff, batch, after):
        # Keyset paging: one pass, so an order the hook held back is not asked again.
        after = rows[-1][0]
        ids = _ask_before_expire(rows, before_expire, summary)
        if ids and _expire_batch(cutoff, batch, summary, ids=ids) is None:
            return False
    return True


def _overdue(cutoff: datetime):
    return (Order.status == UNPAID) & (Order.expires_at < cutoff)


def _has_session():
    return fn.EXISTS(
        Payment.select(Payment.id).where(
            (Payment.order == Order.id) & Payment.session_id.is_null(False)
        )
    )


def _in(column: str, ids: list[str]) -> SQL:
    """`column IN (…)` with one bound parameter per id; far cheaper to build than peewee's
    `.in_()` for the thousands of ids of a batch."""
    marks = ", ".join([database.param] * len(ids))
    return SQL(f'"{column}" IN ({marks})', ids)


def _with_session(cutoff, batch, after: str) -> list[tuple[str, str]]:
    query = (
        Order.select(Order.id, Payment.session_id)
        .join(Payment, on=(Payment.order == Order.id))
        .where(_overdue(cutoff) & Payment.session_id.is_null(False) & (Order.id > after))
        .order_by(Order.id)
        .limit(batch)
    )
    return list(query.tuples())


def _ask_before_expire(rows, before_expire, summary: ExpirySummary) -> list[str]:
    go = []
    for order_id, session_id in rows:
        try:
            proceed = before_expire(order_id, session_id)
        except Exception as exc:  # the hook talks to Stripe: any failure is this order's
            summary.failed += 1
            summary.errors.append(f"{order_id}: {type(exc).__name__}: {exc}")
            continue
        if proceed:
            go.append(order_id)
        else:
            summary.skipped += 1
    return go


def _expire_batch(cutoff, batch, summary, *, ids=None, sessionless=False) -> int | None:
    """Lock and expire one batch (of `ids` if given); the number expired, None on failure."""
    try:
        with write_transaction():
            locked = _lock_overdue(cutoff, batch, ids, sessionless)
            units = _expire_locked(locked) if locked else 0
    except DatabaseError as exc:
        summary.failed += len(ids) if ids else batch
        summary.errors.append(f"batch: {type(exc).__name__}: {exc}".strip())
        return None
    summary.expired += len(locked)
    summary.restored_units += units
    return len(locked)


def _lock_overdue(cutoff, batch, ids, sessionless) -> list[tuple[str, bool]]:
    """(id, stock_released) of up to `batch` overdue orders (among `ids`), now locked by us."""
    # No ORDER BY: the status index hands out overdue orders in table order, which is
    # creation order, so a batch's order, payment and item rows sit on neighbouring pages.
    query = Order.select(Order.id, Order.stock_released).where(_overdue(cutoff))
    if ids is not None:
        query = query.where(_in("id", ids))
    if sessionless:
        query = query.where(~_has_session())
    query = query.limit(batch)
    if is_postgres():
        query = query.for_update(skip_locked=True)
    return list(query.tuples())


def _expire_locked(locked: list[tuple[str, bool]]) -> int:
    """Expire the locked orders and give back the stock they still hold; returns units."""
    stamp = utcnow()
    ids = [order_id for order_id, _ in locked]
    Order.update(status=EXPIRED, stock_released=True, updated_at=stamp).where(
        _in("id", ids)
    ).execute()
    Payment.update(status=EXPIRED, updated_at=stamp).where(_in("order_id", ids)).execute()
    _record_history(ids, stamp)
    announce(ids, UNPAID, EXPIRED, "cron")
    holding = [order_id for order_id, released in locked if not released]
    return _restore_stock(holding, stamp) if holding else 0


def _record_history(ids: list[str], stamp: datetime) -> None:
    """One history row per order, straight from the id list (no second look at the orders)."""
    p = database.param
    rows = ", ".join([f"({p})"] * len(ids))
    database.execute_sql(
        'INSERT INTO "order_history" ("order_id", "from_status", "to_status", "reason", '
        f'"actor", "created_at") SELECT "column1", {p}, {p}, {p}, {p}, {p} '
        f'FROM (VALUES {rows}) AS "v"',
        [UNPAID, EXPIRED, EXPIRY_REASON, "cron", OrderHistory.created_at.db_value(stamp), *ids],
    )


def _restore_stock(order_ids: list[str], stamp: datetime) -> int:
    sums = (
        OrderItem.select(OrderItem.product, fn.SUM(OrderItem.quantity))
        .where(_in("order_id", order_ids))
        .group_by(OrderItem.product)
    )
    per_product = {product_id: int(units) for product_id, units in sums.tuples()}
    _add_to_products(per_product, stamp)
    movements = OrderItem.select(
        OrderItem.product, OrderItem.quantity, Value("expired"), OrderItem.order, Value(stamp)
    ).where(_in("order_id", order_ids))
    StockMovement.insert_from(
        movements,
        [
            StockMovement.product,
            StockMovement.delta,
            StockMovement.reason,
            StockMovement.order,
            StockMovement.created_at,
        ],
    ).execute()
    return sum(per_product.values())


def _add_to_products(per_product: dict[str, int], stamp: datetime) -> None:
    ids = sorted(per_product)
    if is_postgres():
        # Take the product locks in id order, like buyers do, so we never deadlock them.
        Product.select(Product.id).where(Product.id.in_(ids)).order_by(
            Product.id
        ).for_update().execute()
    increment = Case(Product.id, [(product_id, per_product[product_id]) for product_id in ids])
    Product.update(quantity=Product.quantity + increment, updated_at=stamp).where(
        Product.id.in_(ids)
    ).execute()


def _preview(cutoff: datetime) -> ExpirySummary:
    overdue = Order.select(Order.id).where(_overdue(cutoff))
    units = (
        OrderItem.select(fn.COALESCE(fn.SUM(OrderItem.quantity), 0))
        .join(Order)
        .where(_overdue(cutoff) & (Order.stock_released == False))  # noqa: E712
        .scalar()
    )
    return ExpirySummary(expired=overdue.count(), restored_units=int(units), dry_run=True)
