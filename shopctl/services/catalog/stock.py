"""The stock bound: giving stock back can never overflow the stock column.

Stock comes back (cancel, expiry, a failed delayed payment) with `quantity + n` on a
32-bit column. Two rules keep that addition in range whatever happens:

* stock on hand is at most MAX_STOCK (1,000,000,000), checked by the schema at every
  write (create, PATCH, `products set-stock`, seeding); far below the column's
  2,147,483,647, so units out in orders fit when they return;
* a stock write also leaves room for every unit held by orders (placing an order moves
  units from stock into the order and giving back moves them out again, so stock plus
  held only changes when an operator writes the stock, here). Taken under the product's
  row lock, which every reservation and return of this product also takes.
"""

from __future__ import annotations

from peewee import fn

from shopctl.errors import InvalidInput
from shopctl.models import Order, OrderItem, Product
from shopctl.schemas import STOCK_COLUMN_MAX

# What of a line an order still holds: a line refund's restock already gave the rest back.
HELD = OrderItem.quantity - OrderItem.restocked_quantity


def held_by_orders(product_id: str) -> int:
    """Units of the product in orders that still hold their stock (could come back)."""
    held = (
        OrderItem.select(fn.COALESCE(fn.SUM(HELD), 0))
        .join(Order)
        .where((OrderItem.product == product_id) & (Order.stock_released == False))  # noqa: E712
        .scalar()
    )
    return int(held or 0)


def check_room(product_id: str, quantity: int) -> None:
    """InvalidInput (path `quantity`) unless `quantity` plus what orders hold fits."""
    held = held_by_orders(product_id)
    if quantity + held > STOCK_COLUMN_MAX:
        room = STOCK_COLUMN_MAX - held
        raise InvalidInput(
            [
                {
                    "path": "quantity",
                    "message": f"must be at most {room:,} while orders hold {held:,} units "
                    f"of this product: when they come back, stock must stay within "
                    f"{STOCK_COLUMN_MAX:,}",
                }
            ]
        )


def products_without_room(where=None) -> list[tuple[str, int, int]]:
    """(name, stock, held by orders) where giving the held units back would overflow: only
    stock written before the bound existed (or outside shopctl) can be like that. Of the
    products `where` selects (None: all); doctor (ledger.py) reads a slice at a time."""
    if where is None:
        held = fn.COALESCE(fn.SUM(HELD), 0)
        query = (
            Product.select(Product.name, Product.quantity, held.alias("held"))
            .join(OrderItem, on=(OrderItem.product == Product.id))
            .join(Order, on=(Order.id == OrderItem.order))
            .where(Order.stock_released == False)  # noqa: E712
            .group_by(Product.id, Product.name, Product.quantity)
            .having(Product.quantity + held > STOCK_COLUMN_MAX)
        )
    else:  # a sum per product through the index on order_item.product_id
        held = (
            OrderItem.select(fn.COALESCE(fn.SUM(HELD), 0))
            .join(Order)
            .where((OrderItem.product == Product.id) & (Order.stock_released == False))  # noqa: E712
        )
        query = Product.select(Product.name, Product.quantity, held.alias("held")).where(
            where & (Product.quantity + held > STOCK_COLUMN_MAX)
        )
    rows = query.order_by(Product.name).tuples()
    return [(name, quantity, int(units)) for name, quantity, units in rows]
