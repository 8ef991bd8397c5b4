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
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import lru_cache

from peewee import CTE, AutoField, Cast, Field, Model, Query, ValuesList, chunked

from shopctl.db import database, is_postgres
from shopctl.errors import Conflict
from shopctl.models import Order, OrderHistory, OrderItem, Payment, Product, StockMovement, utcnow
from shopctl.prepared import Params, PreparedStatement

UNPAID, PROCESSING, PAID, FAILED = "UNPAID", "PROCESSING", "PAID", "FAILED"
CANCELED, EXPIRED, REFUNDED = "CANCELED", "EXPIRED", "REFUNDED"

# Which status may follow which. `transition()` refuses anything else with Conflict, so a
# bug (or a reordered webhook) can never move an order backwards, e.g. PAID → UNPAID.
# EXPIRED/CANCELED/FAILED → PAID/REFUNDED are the late-payment outcomes (SPEC);
# REFUNDED → PAID is a refund that failed or was canceled after it counted.
ALLOWED: dict[str, frozenset[str]] = {
    UNPAID: frozenset({PROCESSING, PAID, FAILED, CANCELED, EXPIRED}),
    PROCESSING: frozenset({PAID, FAILED}),
    PAID: frozenset({REFUNDED}),
    FAILED: frozenset({PAID, REFUNDED}),
    EXPIRED: frozenset({PAID, REFUNDED}),
    CANCELED: frozenset({PAID, REFUNDED}),
    REFUNDED: frozenset({PAID}),
}


# Work a higher layer must do when orders move (metrics, an outbox row) registers here at
# start-up, so orders never imports it. Hooks run inside the move's transaction: one
# that raises undoes the move. Arguments: order ids, from status, to status, actor.
TransitionHook = Callable[[Sequence[str], str, str, str], None]
TRANSITION_HOOKS: list[TransitionHook] = []


def on_transition(hook: TransitionHook) -> TransitionHook:
    """Register `hook` for every status change from now on (usable as a decorator)."""
    TRANSITION_HOOKS.append(hook)
    return hook


# Orders refused for want of stock (placement) are announced here too: the short product ids.
STOCK_OUT_HOOKS: list[Callable[[list[str]], None]] = []


def on_stock_out(hook: Callable[[list[str]], None]) -> Callable[[list[str]], None]:
    STOCK_OUT_HOOKS.append(hook)
    return hook


def announce_stock_out(product_ids: list[str]) -> None:
    for hook in STOCK_OUT_HOOKS:
        hook(product_ids)


def announce(order_ids: Sequence[str], from_status: str, to_status: str, actor: str) -> None:
    for hook in TRANSITION_HOOKS:
        hook(order_ids, from_status, to_status, actor)


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
    move = {"order_id": order.id, "status": to_status, "now": now}
    record = move | {"from_status": from_status, "reason": reason[:200], "actor": actor[:255]}
    if is_postgres():  # one round trip: the history row rides on the order's UPDATE
        _MOVE_AND_RECORD.execute(**record)
    else:
        _MOVE_ORDER.execute(**move)
        _RECORD_MOVE.execute(**record)
    if payment_status is not None:
        _MOVE_PAYMENT.execute(order_id=order.id, status=payment_status, now=now)
    order.status, order.updated_at = to_status, now
    announce((order.id,), from_status, to_status, actor)
    return True


# Every webhook, cancel and expiry runs these: built once (prepared.py).
def _move_order(p: Params) -> Query:
    return Order.update(status=p.status, updated_at=p.now).where(Order.id == p.order_id)


def _record_move(p: Params) -> Query:
    return OrderHistory.insert(
        order=p.order_id,
        from_status=p.from_status,
        to_status=p.status,
        reason=p.reason,
        actor=p.actor,
        created_at=p.now,
    )


_MOVE_ORDER = PreparedStatement(_move_order)
_RECORD_MOVE = PreparedStatement(_record_move)
# PostgreSQL: the history INSERT as a data-modifying WITH of the order's UPDATE.
_MOVE_AND_RECORD = PreparedStatement(
    lambda p: _move_order(p).with_cte(CTE("recorded", _record_move(p)))
)
_MOVE_PAYMENT = PreparedStatement(
    lambda p: Payment.update(status=p.status, updated_at=p.now).where(Payment.order == p.order_id)
)


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
    taken = take_stock(quantities)
    missing = [product_id for product_id in quantities if product_id not in taken]
    if not missing:
        return {}
    left = Product.select(Product.id, Product.quantity).where(Product.id.in_(missing))
    return {product_id: 0 for product_id in missing} | {p.id: p.quantity for p in left}


def take_stock(
    quantities: Mapping[str, int], *, currency: str | None = None
) -> dict[str, tuple[str, int]]:
    """Take every line's units in one statement, each where there is enough:
    {product id: (name, unit price)} for the lines taken; the others are left untouched.

    With `currency`, only products for sale (not archived) and priced in it are taken.
    `quantity >= n` is what makes overselling impossible: it is checked on the row under
    its lock (PostgreSQL's row lock, SQLite's write lock). The caller rolls back when a
    line is missing.
    """
    lines = sorted(quantities.items())
    values: list = [value for line in lines for value in line]
    values.append(utcnow())
    if currency is not None:
        values.append(currency)
    rows = _TAKE_STOCK.run((len(lines), currency is not None), values).fetchall()
    return {row[0]: (row[1], row[2]) for row in rows}


def _take_stock_query(p: Params, lines: int, for_sale: bool) -> Query:
    """UPDATE … FROM a VALUES list of (id, units) … RETURNING, for `lines` lines: the
    values are p[2i] (id) and p[2i+1] (units), then the time, then the currency."""
    # Typed, so that PostgreSQL can prepare the statement (db.execute_prepared).
    rows = [(Cast(p[2 * i], "VARCHAR(36)"), Cast(p[2 * i + 1], "INTEGER")) for i in range(lines)]
    wanted = ValuesList(rows).cte("v", columns=("id", "q"))
    ctes, checked = [wanted], Product  # SQLite: our write lock already holds every row
    if is_postgres():
        locked = _locked_in_id_order(wanted)
        ctes.append(locked)
        checked = locked.c
    update = Product.update(
        {Product.quantity: checked.quantity - wanted.c.q, Product.updated_at: p[2 * lines]}
    ).from_(*ctes)
    condition = (Product.id == wanted.c.id) & (checked.quantity >= wanted.c.q)
    if checked is not Product:
        condition &= checked.id == wanted.c.id
    if for_sale:
        condition &= ~checked.is_archived & (checked.currency == p[2 * lines + 1])
    returned = update.where(condition).returning(Product.id, Product.name, Product.price_cents)
    return returned.with_cte(*ctes)


def _locked_in_id_order(wanted: CTE) -> CTE:
    """PostgreSQL locks rows in whatever order its plan visits them, which the VALUES
    order does not control. So this MATERIALIZED CTE locks them first, in id order (FOR
    UPDATE applies after ORDER BY) like every other writer of products, and two buyers
    never deadlock. The UPDATE's own scan reads each row as of the statement's start,
    which may be older than the version the CTE locked (a cancel gave stock back while we
    waited): the check and the new quantity are therefore taken from the CTE's row, the
    latest version, which stays the latest while we hold its lock."""
    columns = (Product.id, Product.quantity, Product.is_archived, Product.currency)
    query = Product.select(*columns).join(wanted, on=(Product.id == wanted.c.id))
    return query.order_by(Product.id).for_update(of=Product).cte("locked", materialized=True)


_TAKE_STOCK = PreparedStatement(_take_stock_query)


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


def _item_quantities(order_id: str) -> dict[str, int]:
    quantities: dict[str, int] = defaultdict(int)
    items = OrderItem.select(OrderItem.product, OrderItem.quantity).where(
        OrderItem.order == order_id
    )
    for item in items.tuples():
        quantities[item[0]] += item[1]
    return dict(quantities)


def _record_movements(order_id: str, quantities: Mapping[str, int], reason: str, *, sign: int):
    insert_movements(movement_rows(order_id, quantities, reason, sign=sign))


def movement_rows(
    order_id: str, quantities: Mapping[str, int], reason: str, *, sign: int
) -> list[dict]:
    """The ledger rows for `quantities` moved for an order (sign -1: taken, +1: given back)."""
    now = utcnow()
    return [
        {
            "product": product_id,
            "delta": sign * quantity,
            "reason": reason,
            "order": order_id,
            "created_at": now,
        }
        for product_id, quantity in sorted(quantities.items())
    ]


def insert_movements(rows: Iterable[dict], chunk: int = 1000) -> None:
    """Append ledger rows in chunks small enough for SQLite's bound-parameter limit."""
    for part in chunked(list(rows), chunk):
        insert_rows((StockMovement, part))


def insert_rows(*batches: tuple[type[Model], Sequence[dict]]) -> None:
    """INSERT each (model, rows) batch as one multi-row statement, fields missing from a
    row taking their model default as with `insert_many`; on PostgreSQL every batch goes
    in one statement (data-modifying WITH), a single round trip.

    The SQL is built once per shape: peewee would build it again on every call (about
    0.1 ms of CPU per statement, a third of an order's placement).
    """
    batches = tuple((model, rows) for model, rows in batches if rows)
    shape = tuple((model, len(rows)) for model, rows in batches)
    values = [
        [
            field.db_value(row[field.name] if field.name in row else _default(field))
            for row in rows
            for field in _insert_fields(model)
        ]
        for model, rows in batches
    ]
    if is_postgres():
        _INSERT_ALL.run((shape,), [value for part in values for value in part])
    else:
        for (model, count), part in zip(shape, values, strict=True):
            _INSERT.run((model, count), part)


def _default(field: Field):
    return field.default() if callable(field.default) else field.default


@lru_cache(maxsize=32)
def _insert_fields(model: type[Model]) -> tuple[Field, ...]:
    return tuple(f for f in model._meta.sorted_fields if not isinstance(f, AutoField))


def _insert_query(p: Params, model: type[Model], count: int, first: int = 0) -> Query:
    """INSERT of `count` rows of every field, their values p[first], p[first + 1], …"""
    fields = _insert_fields(model)
    rows = [
        {field: p[first + row * len(fields) + n] for n, field in enumerate(fields)}
        for row in range(count)
    ]
    return model.insert_many(rows)


def _insert_all_query(p: Params, shape: tuple[tuple[type[Model], int], ...]) -> Query:
    """Every batch in one statement: the first ones as data-modifying WITH queries."""
    queries, first = [], 0
    for model, count in shape:
        queries.append(_insert_query(p, model, count, first))
        first += count * len(_insert_fields(model))
    *before, last = queries
    return last.with_cte(*(CTE(f"i{n}", query) for n, query in enumerate(before)))


_INSERT = PreparedStatement(_insert_query)
_INSERT_ALL = PreparedStatement(_insert_all_query)
