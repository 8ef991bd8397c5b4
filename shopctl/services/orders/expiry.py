"""The expiry job (`shopctl orders expire`): overdue UNPAID orders become EXPIRED, stock comes back.

Set-based, batch by batch: per batch a handful of statements, whatever its size.
Safe to run on several hosts at once: on PostgreSQL each batch locks its orders
with `FOR UPDATE SKIP LOCKED`, so concurrent runs split the work instead of queueing
(orders whose Checkout Sessions a run has just closed it waits for instead); on SQLite
the IMMEDIATE write transaction serialises them. Either way the status is re-checked
under the lock, so an order that a cancel or a payment reached first is
left alone, and each order's stock comes back exactly once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from peewee import SQL, Case, DatabaseError, Value, fn

from shopctl.config import Settings
from shopctl.db import database, is_postgres, write_transaction
from shopctl.models import Order, OrderHistory, OrderItem, Payment, Product, StockMovement, utcnow
from shopctl.services.orders.lifecycle import EXPIRED, UNPAID, announce

EXPIRY_REASON = "reservation expired"


@dataclass(frozen=True)
class Verdict:
    """The hook's word on one order (see BeforeExpire)."""

    proceed: bool  # expire it now; False holds it back (e.g. it was paid meanwhile)
    warning: str | None = None  # expired without the confirmation the hook wanted: why
    error: str | None = None  # a real failure: the order stays for the next run


# A page of (order id, Checkout Session id) → a Verdict per order id, asked outside any
# transaction. A missing verdict, or the hook raising, counts those orders as failed;
# the rest of the run goes on.
BeforeExpire = Callable[[list[tuple[str, str]]], Mapping[str, Verdict]]


@dataclass
class ExpirySummary:
    expired: int = 0
    restored_units: int = 0
    failed: int = 0
    skipped: int = 0
    unconfirmed: int = 0
    dry_run: bool = False
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failed == 0

    def line(self) -> str:
        if self.dry_run:
            return f"would expire {self.expired} orders, restoring {self.restored_units} units"
        text = f"expired {self.expired} orders, restored {self.restored_units} units, "
        text += f"{self.failed} failed"
        text += f", {self.skipped} skipped" if self.skipped else ""
        return text + (f", {self.unconfirmed} unconfirmed" if self.unconfirmed else "")

    def as_json(self) -> dict:
        return {
            "expired": self.expired,
            "restoredUnits": self.restored_units,
            "failed": self.failed,
            "skipped": self.skipped,
            "unconfirmed": self.unconfirmed,
            "dryRun": self.dry_run,
            "errors": self.errors,
            "warnings": self.warnings,
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

    With `before_expire`, orders that have a Checkout Session are first put to it, a
    page at a time and outside any transaction (see BeforeExpire); orders without one go
    the fast, set-based way. A batch that fails with a database error is retried order by
    order, so one order's failure never holds back the others; the orders that fail
    alone count as failed and the next run retries them.
    """
    cutoff = now or utcnow()
    if dry_run:
        return _preview(cutoff)
    summary = ExpirySummary()
    failed: set[str] = set()
    with_hook = before_expire is not None
    if with_hook:
        _expire_sessions_first(cutoff, batch, before_expire, summary, failed)
    # Each batch locks the next overdue orders nobody else holds; expired (and failed)
    # ones no longer match, so the loop ends when nothing is left (or everything left is
    # another run's).
    while _expire_batch(cutoff, batch, summary, failed, sessionless=with_hook):
        pass
    return summary


def _expire_sessions_first(cutoff, batch, before_expire, summary, failed: set[str]) -> None:
    """Ask about, then expire, the overdue orders with a session."""
    after = ""
    while rows := _with_session(cutoff, batch, after):
        # Keyset paging: one pass, so an order the hook held back is not asked again.
        after = rows[-1][0]
        ids = _ask_before_expire(rows, before_expire, summary)
        if ids:
            _expire_batch(cutoff, batch, summary, failed, ids=ids)


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
    try:
        verdicts = before_expire(rows)
    except Exception as exc:  # the hook talks to Stripe: a failure is this page's only
        verdicts = {}
        summary.errors.append(f"{len(rows)} orders: {type(exc).__name__}: {exc}")
    go = []
    for order_id, _ in rows:
        verdict = verdicts.get(order_id)
        if verdict is None or verdict.error:
            summary.failed += 1
            if verdict is not None:
                summary.errors.append(f"{order_id}: {verdict.error}")
        elif verdict.proceed:
            go.append(order_id)
            if verdict.warning:
                summary.unconfirmed += 1
                summary.warnings.append(f"{order_id}: {verdict.warning}")
        else:
            summary.skipped += 1
    return go


def _expire_batch(cutoff, batch, summary, failed: set[str], *, ids=None, sessionless=False):
    """Lock and expire one batch (of `ids` if given); the number of orders dealt with.

    When the batch fails, each of its orders is tried alone; those that fail again are
    counted, noted and left out of the rest of this run.
    """
    try:
        with write_transaction():
            locked = _lock_overdue(cutoff, batch, ids, sessionless, failed)
            units = _expire_locked(locked) if locked else 0
    except DatabaseError as exc:
        if ids is None:
            candidates = _overdue_ids(cutoff, batch, None, sessionless, failed)
            ids = [order_id for order_id, _ in candidates.tuples()]
        if len(ids) > 1:
            return sum(_expire_batch(cutoff, 1, summary, failed, ids=[one]) for one in ids)
        summary.failed += len(ids)
        failed.update(ids)
        detail = " ".join(f"{type(exc).__name__}: {exc}".split())
        summary.errors.append(f"{ids[0] if ids else 'batch'}: {detail}"[:500])
        return len(ids)
    summary.expired += len(locked)
    summary.restored_units += units
    return len(locked)


def _overdue_ids(cutoff, batch, ids, sessionless, failed):
    """Up to `batch` overdue orders (among `ids`) not known to fail in this run."""
    # No ORDER BY: the status index hands out overdue orders in table order, which is
    # creation order, so a batch's order, payment and item rows sit on neighbouring pages.
    query = Order.select(Order.id, Order.stock_released).where(_overdue(cutoff))
    if ids is not None:
        query = query.where(_in("id", ids))
    if sessionless:
        query = query.where(~_has_session())
    if failed:
        query = query.where(~_in("id", sorted(failed)))
    return query.limit(batch)


def _lock_overdue(cutoff, batch, ids, sessionless, failed) -> list[tuple[str, bool]]:
    """(id, stock_released) of up to `batch` overdue orders (among `ids`), now locked by us."""
    query = _overdue_ids(cutoff, batch, ids, sessionless, failed)
    if is_postgres() and ids is not None:
        # Orders whose sessions this run has just closed are ours to settle: wait for a
        # webhook that holds one for a moment rather than skip it. In id order, so two
        # runs that asked about the same orders cannot deadlock; the status is re-checked
        # once the lock is ours.
        query = query.order_by(Order.id).for_update()
    elif is_postgres():
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
