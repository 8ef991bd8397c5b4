"""Line refunds: which units of an order a refund pays back, and their return to stock.

They ride on the refund rows of refunds.py / refund_ledger.py, inside the same
transactions, under the order's row lock:

1. Reserve (with the PENDING refund row): each line's refunded quantity grows by a
   guarded UPDATE (`refunded + n <= quantity`), one `refund_line` row per line.
2. Stripe accepted the refund (its answer or its events give the row a Stripe id and a
   pending or succeeded status): lines asked to `restock` go back to stock now, once per
   line (`restocked_at` is the guard), as ledger movements linked to the refund. Stock
   never comes back for money Stripe did not agree to return.
3. Stripe refused it (FAILED, CANCELED): the lines not restocked are given back
   (`released_at`), refundable again. Lines already restocked stay refunded: the goods
   are back; the money is refunded again with an amount-only refund.
"""

from __future__ import annotations

from peewee import fn

from shopctl.errors import Conflict
from shopctl.models import Order, OrderItem, Product, Refund, RefundLine, StockMovement, utcnow
from shopctl.services.orders import fulfilment_state
from shopctl.services.orders.lifecycle import lock_order

RESTOCK_REASON = "refund-restock"


def line_items(order: Order, lines: dict[str, int]) -> tuple[dict[str, OrderItem], dict]:
    """The order's items and `lines` by whole item id (ids or 6+ first characters given);
    Conflict for a line asking more than is still refundable of it."""
    items = {item.id: item for item in OrderItem.select().where(OrderItem.order == order.id)}
    wanted = fulfilment_state.resolve_lines(items, lines)
    for item_id, units in wanted.items():
        item = items[item_id]
        left = item.quantity - item.refunded_quantity
        if units > left:
            raise Conflict(f"{item.product_name}: only {left} unit(s) left to refund, not {units}")
    return items, wanted


def shipping_left(order: Order) -> int:
    """The order's shipping not yet paid back (pending and succeeded refunds count):
    Conflict if it has none left."""
    refunded = (
        Refund.select(fn.COALESCE(fn.SUM(Refund.shipping_cents), 0))
        .where((Refund.order == order.id) & Refund.status.in_(("PENDING", "SUCCEEDED")))
        .scalar()
    )
    left = (order.shipping_cents or 0) - int(refunded or 0)
    if left <= 0:
        what = "was already refunded" if order.shipping_cents else "has no shipping amount"
        raise Conflict(f"This order's shipping {what}")
    return left


def value(items: dict[str, OrderItem], lines: dict[str, int]) -> int:
    """What the lines cost when they were bought."""
    return sum(items[item_id].price_cents * units for item_id, units in lines.items())


def take(order: Order, refund: Refund, items: dict[str, OrderItem], lines: dict, restock: bool):
    """Count the lines refunded for `refund` (a PENDING row just reserved)."""
    for item_id, units in sorted(lines.items()):
        item = items[item_id]
        taken = (
            OrderItem.update(refunded_quantity=OrderItem.refunded_quantity + units)
            .where(
                (OrderItem.id == item_id)
                & (OrderItem.refunded_quantity + units <= OrderItem.quantity)
            )
            .execute()
        )
        if not taken:
            left = item.quantity - item.refunded_quantity
            raise Conflict(f"{item.product_name}: only {left} unit(s) left to refund, not {units}")
        RefundLine.create(
            refund=refund.id, item=item_id, quantity=units, restock=restock, restocked_at=None
        )
    status = fulfilment_state.refresh(order)
    units = sum(lines.values())
    fulfilment_state.record_event(
        order,
        "line_refund",
        f"refund {refund.id}: {units} unit(s) refunded"
        + (", to restock once Stripe accepts" if restock else "")
        + f"; now {status}",
        refund.actor,
    )


def settle(refund: Refund) -> None:
    """What Stripe's latest word on `refund` means for its lines: restock once accepted,
    give back once refused. Nothing for a refund without lines; idempotent."""
    lines = list(
        RefundLine.select(RefundLine, OrderItem)
        .join(OrderItem)
        .where(RefundLine.refund == refund.id)
        .order_by(OrderItem.product)
    )
    if not lines:
        return
    if refund.status in ("PENDING", "SUCCEEDED") and refund.stripe_refund_id:
        _restock(refund, [line for line in lines if line.restock])
    elif refund.status in ("FAILED", "CANCELED"):
        _release(refund, lines)


def _settle_line(line: RefundLine, column, now) -> bool:
    """Mark a refund line restocked or released, once: a line is settled one way only."""
    return bool(
        RefundLine.update({column: now})
        .where(
            (RefundLine.id == line.id)
            & RefundLine.restocked_at.is_null()
            & RefundLine.released_at.is_null()
        )
        .execute()
    )


def _restock(refund: Refund, lines: list[RefundLine]) -> None:
    now, moved = utcnow(), 0
    for line in lines:
        if not _settle_line(line, RefundLine.restocked_at, now):
            continue
        returned = (
            OrderItem.update(restocked_quantity=OrderItem.restocked_quantity + line.quantity)
            .where(
                (OrderItem.id == line.item_id)
                & (OrderItem.restocked_quantity + line.quantity <= OrderItem.refunded_quantity)
            )
            .execute()
        )
        if not returned:  # only a write outside shopctl can leave a line like that
            raise Conflict(f"Item {line.item_id}: more units restocked than refunded")
        product_id = line.item.product_id
        Product.update(quantity=Product.quantity + line.quantity, updated_at=now).where(
            Product.id == product_id
        ).execute()
        StockMovement.create(
            product=product_id,
            delta=line.quantity,
            reason=RESTOCK_REASON,
            order=refund.order_id,
            refund=refund.id,
            created_at=now,
        )
        moved += line.quantity
    if moved:
        order = lock_order(refund.order_id)
        fulfilment_state.record_event(
            order, "restocked", f"refund {refund.id}: {moved} unit(s) back in stock", refund.actor
        )


def _release(refund: Refund, lines: list[RefundLine]) -> None:
    now, released = utcnow(), 0
    for line in lines:
        if not _settle_line(line, RefundLine.released_at, now):
            continue
        OrderItem.update(refunded_quantity=OrderItem.refunded_quantity - line.quantity).where(
            (OrderItem.id == line.item_id) & (OrderItem.refunded_quantity >= line.quantity)
        ).execute()
        released += line.quantity
    if released:
        order = lock_order(refund.order_id)
        status = fulfilment_state.refresh(order)
        fulfilment_state.record_event(
            order,
            "line_refund_undone",
            f"refund {refund.id} {refund.status.lower()}: {released} unit(s) refundable "
            f"again; now {status}",
            refund.actor,
        )
