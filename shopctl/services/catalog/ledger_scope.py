"""Which products and orders a `shopctl doctor` run checks, so its cost stays flat as the
shop grows (issue 20): a million products would otherwise be re-summed every run.

A run checks, unless asked for everything (`doctor --full`, or no checkpoint yet):

* what shopctl changed since the last clean run: every stock change writes a movement and
  every status change a history row, both with increasing ids, so the products and
  orders named by rows above the checkpoint are the ones that may have gone wrong;
* the next SWEEP products and SWEEP orders, by id, continuing where the last run stopped
  and starting over at the end: a change made outside shopctl (an UPDATE by hand, which
  writes no movement) is found within ceil(rows / SWEEP) runs, and at once in a shop of
  at most SWEEP rows, which is checked whole every run.

The checkpoint is saved only after a clean run, so a problem found is found again until
it is fixed. It trails by one run: each run re-reads the ids above what the previous run
saw at its start, so a transaction that had taken an id but not yet committed when a run
read the highest id is still checked by the next one.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

from peewee import DatabaseError, chunked, fn

from shopctl.db import write_transaction
from shopctl.models import Order, OrderHistory, Product, StockMovement, SyncCursor, utcnow

CHECKPOINT = "doctor ledger"
SWEEP = 10_000
CHUNK = 500  # ids per IN (...) list: within SQLite's bound-parameter limit


@dataclass(frozen=True)
class Marks:
    """Ids to resume from: movements and history rows above `movement`/`history` are
    unchecked; `movement_seen`/`history_seen` were the highest when the run started;
    the sweep goes on after `product`/`order` (empty: from the start)."""

    movement: int = 0
    history: int = 0
    movement_seen: int = 0
    history_seen: int = 0
    product: str = ""
    order: str = ""

    def encode(self) -> str:
        return " ".join(str(value) or "-" for value in vars(self).values())

    @classmethod
    def decode(cls, text: str) -> Marks | None:
        parts = text.split()
        if len(parts) != 6 or not all(part.isdigit() for part in parts[:4]):
            return None
        numbers = [int(part) for part in parts[:4]]
        product, order = (part if part != "-" else "" for part in parts[4:])
        return cls(*numbers, product, order)


@dataclass(frozen=True)
class Part:
    """Rows of one table to check: the ids named by changes, and the sweep's slice as
    ranges of ids (bounds[0], bounds[1]], (bounds[1], bounds[2]], …, CHUNK rows each; with
    `open_end` the last range runs to the end of the table.

    Ranges, not lists of ids, so each is an index range scan (a list of 500 ids was planned
    as a scan of the table); CHUNK rows at a time, so each query's plan stays a few index
    probes per row (ten thousand at once were planned as a hash join over every order
    line, and compiled by JIT for longer than they ran)."""

    changed: list[str]
    bounds: list[str]
    open_end: bool

    def conditions(self, column) -> list:
        """WHERE conditions on `column` (the table's id or a reference to it), one query
        each; a row may be named by two (the caller counts it once)."""
        ranges = [(column > low) & (column <= high) for low, high in pairwise(self.bounds)]
        if self.open_end:
            ranges[-1:] = [column > self.bounds[-2 if len(self.bounds) > 1 else -1]]
        return [column.in_(ids) for ids in chunked(self.changed, CHUNK)] + ranges

    def describe(self, what: str) -> str:
        return f"{len(self.changed):,} {what} changed since the last clean run and the sweep's next"


@dataclass
class LedgerScope:
    """The products and orders to check (None: all of them) and the checkpoint to save
    once they are found clean."""

    products: Part | None
    orders: Part | None
    after: Marks | None

    @property
    def whole(self) -> bool:
        return self.products is None

    def product_conditions(self, column) -> list:
        return [None] if self.products is None else self.products.conditions(column)

    def order_conditions(self, column) -> list:
        return [None] if self.orders is None else self.orders.conditions(column)

    def describe(self, part: Part | None, what: str) -> str:
        if part is None:
            return f"all {what} checked"
        return f"{part.describe(what)} {SWEEP:,}"

    def save(self) -> bool:
        """Record the checkpoint; False when the database refuses the write (read-only)."""
        value, now = self.after.encode(), utcnow()
        try:
            with write_transaction():
                SyncCursor.insert(name=CHECKPOINT, value=value, updated_at=now).on_conflict(
                    conflict_target=[SyncCursor.name],
                    update={SyncCursor.value: value, SyncCursor.updated_at: now},
                ).execute()
        except DatabaseError:
            return False
        return True


def _highest(model) -> int:
    return model.select(fn.MAX(model.id)).scalar() or 0


def _saved() -> Marks | None:
    row = SyncCursor.get_or_none(SyncCursor.name == CHECKPOINT)
    return Marks.decode(row.value) if row else None


def _sweep(model, after: str) -> tuple[list[str], bool]:
    """The bounds of the next SWEEP ids after `after`, CHUNK apart, and whether fewer were
    left (then the slice runs to the end and the next run starts over). From the id index."""
    query = model.select(model.id).where(model.id > after).order_by(model.id).limit(SWEEP)
    ids = [key for (key,) in query.tuples()]
    ends = ids[CHUNK - 1 :: CHUNK]
    if ids and ends[-1:] != ids[-1:]:
        ends.append(ids[-1])
    return [after, *ends], len(ids) < SWEEP


def whole_shop() -> LedgerScope:
    movement, history = _highest(StockMovement), _highest(OrderHistory)
    return LedgerScope(None, None, Marks(movement, history, movement, history))


def ledger_scope(full: bool = False) -> LedgerScope:
    """Everything when `full` or when no clean run was recorded; else what changed and the
    sweep's next slice."""
    saved = None if full else _saved()
    if saved is None:
        return whole_shop()
    movement, history = _highest(StockMovement), _highest(OrderHistory)
    moved = StockMovement.select(StockMovement.product, StockMovement.order).where(
        StockMovement.id > saved.movement
    )
    products, orders = set(), set()
    for product_id, order_id in moved.tuples():
        products.add(product_id)
        if order_id is not None:
            orders.add(order_id)
    moved_orders = OrderHistory.select(OrderHistory.order).where(OrderHistory.id > saved.history)
    orders.update(order_id for (order_id,) in moved_orders.tuples())
    product_bounds, products_end = _sweep(Product, saved.product)
    order_bounds, orders_end = _sweep(Order, saved.order)
    after = Marks(
        saved.movement_seen,
        saved.history_seen,
        movement,
        history,
        "" if products_end else product_bounds[-1],
        "" if orders_end else order_bounds[-1],
    )
    return LedgerScope(
        Part(sorted(products), product_bounds, products_end),
        Part(sorted(orders), order_bounds, orders_end),
        after,
    )
